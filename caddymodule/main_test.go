package caddymodule

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/totp-auth/totp_auth/internal/pgtest"
)

// pg is the PostgreSQL cluster of the tests that need one, started by the
// first of them and stopped by TestMain.
var pg struct {
	once   sync.Once
	server *pgtest.Server
	err    error
}

// postgresDatabase returns the connection string of a new, empty database.
func postgresDatabase(t testing.TB) string {
	t.Helper()
	pg.once.Do(func() { pg.server, pg.err = pgtest.Start() })
	if pg.err != nil {
		t.Fatal(pg.err)
	}
	dsn, err := pg.server.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pg.server != nil {
		if err := pg.server.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
