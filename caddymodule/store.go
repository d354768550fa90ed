package caddymodule

import (
	"io"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage"
	"github.com/totp-auth/totp_auth/storage/postgres"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// store is what the module needs of a database, bbolt (db_path) or
// PostgreSQL (postgres): the gateway's Store, on which every operator
// action works too, and the maintenance only a store itself can do.
type store interface {
	account.Store
	RotateKey(key secrets.Key) error
	Backup(w io.Writer) (int64, error)
	Close() error
}

// Interface guards
var (
	_ store = (*storage.DB)(nil)
	_ store = (*postgres.DB)(nil)
)
