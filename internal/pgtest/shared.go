package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// shared is the cluster of this test binary, started by the first test
// that asks for a database.
var shared struct {
	once   sync.Once
	server *Server
	err    error
}

// Shared returns the test binary's cluster, starting it on first use. Call
// Cleanup from TestMain after m.Run.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() { shared.server, shared.err = Start() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.server
}

// Database returns the connection string of an empty database on the test
// binary's cluster (see Shared), which no other test uses while t runs.
// When t ends, after the cleanups t registered later (closing its stores),
// the database is emptied in the background and kept, under a new name,
// for a later call: the next test sees nothing of this one (see
// Server.release).
func Database(t testing.TB) string {
	t.Helper()
	s := Shared(t)
	name, err := s.database()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.releaseLater(name) })
	return s.DSN(name)
}

// Own starts a cluster for t alone, closed when t ends, for tests that
// stop or restart the server, and returns it with a new database on it.
func Own(t testing.TB) (*Server, string) {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	dsn, err := s.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return s, dsn
}

// Cleanup closes the shared cluster if a test started it. It tells on
// stderr how many databases could not be emptied for reuse (see
// Server.release), which costs time and nothing else.
func Cleanup() error {
	if shared.server == nil {
		return nil
	}
	s := shared.server
	s.settle()
	s.reuse.mu.Lock()
	if s.reuse.unused > 0 {
		fmt.Fprintf(os.Stderr, "pgtest: %d databases were not reused; the first: %v\n", s.reuse.unused, s.reuse.why)
	}
	s.reuse.mu.Unlock()
	return s.Close()
}

// Exec runs statements on dsn outside any store, as an operator would with
// psql, and fails t if they fail.
func Exec(t testing.TB, dsn, statements string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, statements, args...); err != nil {
		t.Fatalf("%s: %v", statements, err)
	}
}
