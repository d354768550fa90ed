package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	return conn
}

func query[T any](t testing.TB, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func databaseOID(t testing.TB, conn *pgx.Conn) uint32 {
	t.Helper()
	return query[uint32](t, conn, "SELECT oid FROM pg_database WHERE datname = current_database()")
}

// TestDatabase_TheNextTestSeesNothingOfTheLast leaves behind what a test
// can: schemas, tables, functions, a temporary table, a LISTEN and a
// session advisory lock on connections still open, and a client that
// keeps reconnecting; the next test gets the same database, emptied and
// under another name.
func TestDatabase_TheNextTestSeesNothingOfTheLast(t *testing.T) {
	parent := t
	ctx := context.Background()
	var (
		first    string
		firstOID uint32
		stop     = make(chan struct{})
		stopped  = make(chan struct{})
		reached  = make(chan struct{}, 1)
	)
	t.Run("leaves things behind", func(t *testing.T) {
		first = Database(t)
		Exec(t, first, `CREATE SCHEMA app;
CREATE TABLE app.accounts (name text PRIMARY KEY);
INSERT INTO app.accounts VALUES ('alice');
CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE SCHEMA other;
CREATE SEQUENCE other.counter;
CREATE TYPE other.mood AS ENUM ('ok');`)
		// Connections the test leaves open: they are still there when the
		// database is released, and end with the parent test.
		var open [2]*pgx.Conn
		for i := range open {
			c, err := pgx.Connect(ctx, first)
			if err != nil {
				t.Fatal(err)
			}
			open[i] = c
		}
		parent.Cleanup(func() {
			for _, c := range open {
				_ = c.Close(ctx)
			}
		})
		if _, err := open[0].Exec(ctx, `CREATE TEMP TABLE scratch (x int); LISTEN "app.changes"; SELECT pg_advisory_lock(42)`); err != nil {
			t.Fatal(err)
		}
		if _, err := open[1].Exec(ctx, `BEGIN; SELECT pg_advisory_xact_lock(43); INSERT INTO app.accounts VALUES ('bob')`); err != nil {
			t.Fatal(err)
		}
		firstOID = databaseOID(t, open[0])
		// A client that outlives its test and reconnects, as a pool does.
		go func() {
			defer close(stopped)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c, err := pgx.Connect(ctx, first); err == nil {
					select {
					case reached <- struct{}{}:
					default:
					}
					_, _ = c.Exec(ctx, "SELECT pg_advisory_lock(44)")
					_ = c.Close(ctx)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		<-reached // the reconnecting client reached the database
	})

	t.Run("gets it empty", func(t *testing.T) {
		Shared(t).settle()
		dsn := Database(t)
		if dsn == first {
			t.Fatalf("the next test got the same connection string %q", dsn)
		}
		conn := connect(t, dsn)
		if got := databaseOID(t, conn); got != firstOID {
			t.Fatalf("database %d was not reused (got %d): the free list is not used", firstOID, got)
		}
		if got := query[string](t, conn, "SELECT string_agg(nspname, ' ' ORDER BY nspname) FROM pg_namespace"); got != "information_schema pg_catalog pg_toast public" {
			t.Errorf("schemas: %s", got)
		}
		if n := query[int](t, conn, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"); n != 0 {
			t.Errorf("%d relations left in public", n)
		}
		if n := query[int](t, conn, "SELECT count(*) FROM pg_type WHERE typname = 'mood'"); n != 0 {
			t.Errorf("%d types left", n)
		}
		if n := query[int](t, conn, "SELECT count(*) FROM pg_proc WHERE pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)"); n != 0 {
			t.Errorf("%d functions left", n)
		}
		if n := query[int](t, conn, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()"); n != 0 {
			t.Errorf("%d sessions of the last test still connected", n)
		}
		if n := query[int](t, conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"); n != 0 {
			t.Errorf("%d advisory locks still held", n)
		}
		if !query[bool](t, conn, "SELECT pg_try_advisory_lock(42)") {
			t.Error("the last test's advisory lock is still held")
		}
		// Who listened is gone: a notification reaches no one.
		if n := query[int](t, conn, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"); n != 0 {
			t.Errorf("%d listeners left", n)
		}
		Exec(t, dsn, "CREATE SCHEMA app; CREATE SCHEMA other") // names free again
		close(stop)
		<-stopped
		if c, err := pgx.Connect(ctx, first); err == nil {
			_ = c.Close(ctx)
			t.Fatal("the last test's connection string still reaches a database")
		}
	})
}

// TestDatabase_OneThatCannotBeEmptiedIsNotReused leaves what dropping the
// schemas does not remove (default privileges for the whole database), or
// objects in public, which then cannot be made again exactly as initdb
// makes it: those databases go to no later test.
func TestDatabase_OneThatCannotBeEmptiedIsNotReused(t *testing.T) {
	for _, spoil := range []string{
		"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC",
		"CREATE TABLE public.left_over (x int)",
	} {
		t.Run(spoil, func(t *testing.T) {
			var spoiled uint32
			t.Run("spoils", func(t *testing.T) {
				dsn := Database(t)
				Exec(t, dsn, spoil)
				spoiled = databaseOID(t, connect(t, dsn))
			})
			s := Shared(t)
			s.settle()
			s.reuse.mu.Lock()
			free := append([]string(nil), s.reuse.free...)
			s.reuse.mu.Unlock()
			conn := connect(t, s.DSN("postgres"))
			if n := query[int](t, conn, "SELECT count(*) FROM pg_database WHERE oid = $1 AND datname = ANY($2)", spoiled, free); n != 0 {
				t.Fatal("a database that could not be emptied is kept for reuse")
			}
			next := connect(t, Database(t))
			if n := query[int](t, next, "SELECT count(*) FROM pg_default_acl"); n != 0 {
				t.Fatalf("%d default privileges in a database handed out", n)
			}
			if n := query[int](t, next, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"); n != 0 {
				t.Fatalf("%d relations in public in a database handed out", n)
			}
		})
	}
}

// TestDatabase_TestsRunningAtOnceNeverShareOne checks that no two tests
// running at the same time hold the same database.
func TestDatabase_TestsRunningAtOnceNeverShareOne(t *testing.T) {
	var (
		mu   sync.Mutex
		held = map[uint32]string{}
	)
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			conn := connect(t, Database(t))
			oid := databaseOID(t, conn)
			mu.Lock()
			defer mu.Unlock()
			if other, ok := held[oid]; ok {
				t.Fatalf("database %d given to %s and %s at once", oid, other, t.Name())
			}
			held[oid] = t.Name()
			t.Cleanup(func() { // before the release
				mu.Lock()
				delete(held, oid)
				mu.Unlock()
			})
		})
	}
}
