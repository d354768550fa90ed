package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/storage/postgres"
)

// postgresOpenTimeout bounds how long Provision waits for PostgreSQL.
const postgresOpenTimeout = 30 * time.Second

// errPostgresNeedsKey is the start-up error when postgres is set without
// encryption_key: a generated key file would differ on every instance.
var errPostgresNeedsKey = errors.New("encryption_key is required with postgres: every instance must seal and open secrets " +
	"with the same key, so none can be generated into a key file; make one with `openssl rand -hex 32` and give the same one to every instance, e.g. {env.TOTP_AUTH_KEY}")

// postgresPoolKey is the key of a PostgreSQL database in databases: site
// blocks and reloads naming the same connection string share one pool of
// connections and one listener.
func postgresPoolKey(connString string) string { return "postgres\x00" + connString }

// databaseName names the database under key in databases for logs: the
// path of a bbolt file, or a PostgreSQL database without its password.
func databaseName(key string) string {
	if connString, ok := strings.CutPrefix(key, postgresPoolKey("")); ok {
		return postgres.Describe(connString)
	}
	return key
}

// openSharedPostgres returns the open PostgreSQL database for connString
// from databases, or opens it there; see openSharedDatabase, whose
// contract it follows.
func openSharedPostgres(connString string, ks keySet, logger *zap.Logger) (d *database, held bool, err error) {
	name := postgres.Describe(connString)
	if name == "" {
		return nil, false, errors.New("postgres: the connection string does not parse: write it as a libpq keyword/value string " +
			"(\"host=db.internal dbname=totp user=caddy\") or a URL (postgres://caddy@db.internal/totp)")
	}
	return shareDatabase(postgresPoolKey(connString), ks, logger, zap.String("postgres", name), func() (*database, error) {
		ctx, cancel := context.WithTimeout(context.Background(), postgresOpenTimeout)
		defer cancel()
		db, err := postgres.Open(ctx, connString, postgres.Options{Keys: ks.keys})
		if err != nil {
			return nil, fmt.Errorf("totp_auth database: %w", err)
		}
		return newDatabase(name, db, ks, logger), nil
	})
}
