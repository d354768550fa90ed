package postgres

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/pgtest"
	"github.com/totp-auth/totp_auth/internal/storetest"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// server is the cluster every test of the package uses; each test gets a
// database of its own.
var server *pgtest.Server

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run()) // listing only (make fuzz): nothing runs
	}
	var err error
	if server, err = pgtest.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := server.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func newDatabase(t testing.TB) string {
	t.Helper()
	dsn, err := server.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return dsn
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

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) account.Store {
		return openTest(t, newDatabase(t), Options{Keys: []secrets.Key{mustKey(t)}})
	})
}
