package postgres

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/pgtest"
	"github.com/totp-auth/totp_auth/internal/storetest"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// Most tests run two at a time (t.Parallel), each on a database or a
// schema of its own (see inSchema): much of their time is spent waiting
// for a notification, a lease or a connection. Those that time a frozen
// listener against the lease run alone, before the others.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run()) // listing only (make fuzz): nothing runs
	}
	code := m.Run()
	if err := pgtest.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func mustKey(t testing.TB) secrets.Key {
	t.Helper()
	k, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// openTest opens dsn and closes it when the test ends.
func openTest(t testing.TB, dsn string, opts Options) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// sharedDatabase is one database the tests of this package share, each in
// schemas of its own: schemas keep deployments apart
// (TestOpen_SchemasKeepDeploymentsApart), and a database per test costs
// the server a tenth of a second of CPU to make or empty. Tests that look
// at the database as a whole (a listener's pid, notification channels or
// SQL typed against the default schema) or stop the server take a
// database of their own (pgtest.Database).
var sharedDatabase struct {
	once    sync.Once
	dsn     string
	err     error
	schemas atomic.Int64
}

// inSchema returns the shared database and a schema no other test uses.
func inSchema(t testing.TB) (dsn, schema string) {
	t.Helper()
	sharedDatabase.once.Do(func() { sharedDatabase.dsn, sharedDatabase.err = pgtest.Shared(t).NewDatabase() })
	if sharedDatabase.err != nil {
		t.Fatal(sharedDatabase.err)
	}
	return sharedDatabase.dsn, fmt.Sprintf("test_%d", sharedDatabase.schemas.Add(1))
}

// fourConns, added to a connection string, gives a test's store four
// connections rather than a deployment's sixteen: its concurrent calls
// still run four transactions at once, more than two cores run together,
// queued on the same locks, and each further connection costs the server
// 20-30 ms of CPU to start.
const fourConns = " pool_max_conns=4"

// TestStore runs the conformance suite with a store of its own for each
// subtest, each in a schema of its own (see inSchema) and with fourConns.
func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) account.Store {
		dsn, schema := inSchema(t)
		return openTest(t, dsn+fourConns, Options{Keys: []secrets.Key{mustKey(t)}, Schema: schema})
	})
}
