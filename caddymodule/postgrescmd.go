package caddymodule

import (
	"context"
	"errors"
	"os"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/storage/postgres"
)

// This file lets the `caddy totp-auth` commands work on a PostgreSQL
// database. They always open it directly, running Caddy or not: PostgreSQL
// serves many processes at once, and every running instance hears of each
// change from the database's trigger.

// connectPostgres opens the PostgreSQL database named by --postgres, or
// by the configuration when it names exactly one database and that one is
// PostgreSQL. ok is false when the command is about a bbolt file instead.
func (o *options) connectPostgres(configured []configuredDB) (t *target, ok bool, err error) {
	connString := o.postgres
	var cfg *configuredDB
	for i := range configured {
		if configured[i].postgres != "" && (connString == "" || configured[i].postgres == connString) {
			cfg = &configured[i]
		}
	}
	switch {
	case connString != "":
	case o.db == "" && len(configured) == 1 && cfg != nil:
		connString = cfg.postgres
	case o.db == "" && len(configured) == 0 && os.Getenv(envPostgres) != "":
		if connString, err = postgresFromEnv(); err != nil {
			return nil, true, err
		}
	default:
		return nil, false, nil
	}
	d, err := o.openPostgres(connString, cfg)
	if err != nil {
		return nil, true, err
	}
	return &target{path: d.path, offline: d}, true, nil
}

// openPostgres opens the database at connString with the key from --key,
// the configuration or TOTP_AUTH_KEY, in that order.
func (o *options) openPostgres(connString string, cfg *configuredDB) (*database, error) {
	src := o.keySource(cfg)
	if src.current == "" {
		return nil, errors.New("the key of a PostgreSQL database is needed: give it with --key, in the configuration (--config), or in TOTP_AUTH_KEY")
	}
	ks, err := src.resolve(caddy.NewReplacer(), "", false, caddy.Log())
	if err != nil {
		return nil, err
	}
	name := postgres.Describe(connString)
	if name == "" {
		return nil, errors.New("--postgres: the connection string does not parse: write it as a libpq keyword/value string or a postgres:// URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), postgresOpenTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, connString, postgres.Options{Keys: ks.keys})
	if err != nil {
		return nil, err
	}
	d := &database{path: name, db: db, logger: zap.NewNop(), current: ks.current(), handlers: make(map[*TOTPAuth]holder)}
	if cfg != nil {
		d.holdForCommand(holder{users: cfg.users})
	} else {
		d.holdForCommand(holder{noConfig: true})
	}
	return d, nil
}

// configuredPostgres is the configuredDB of a handler with postgres set.
func configuredPostgres(h TOTPAuth, repl *caddy.Replacer) configuredDB {
	connString := repl.ReplaceKnown(h.Postgres, "")
	return configuredDB{
		path:     postgres.Describe(connString),
		postgres: connString,
		keys:     keySource{current: h.EncryptionKey, old: h.OldEncryptionKeys},
		users:    map[string]bool{},
	}
}
