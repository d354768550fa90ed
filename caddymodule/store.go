package caddymodule

import (
	"io"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/storage"
	"github.com/totp-auth/totp_auth/storage/postgres"
)

// store is what the module needs of a database, bbolt (db_path) or
// PostgreSQL (postgres): the gateway's Store and what operators do.
type store interface {
	gateway.Store
	Accounts() ([]storage.AccountSummary, error)
	SetPassword(user string, hash []byte) error
	RemoveAccount(user string) error
	ResetTOTP(user string) error
	Counter(key string) (gateway.Counter, error)
	LockState(key string, now time.Time) (*gateway.Lock, error)
	Locks(now time.Time) ([]gateway.Lock, error)
	Unlock(key string) error
	PruneCounters(now time.Time, window time.Duration) (int, error)
	RotateKey(key storage.Key) error
	Backup(w io.Writer) (int64, error)
	Close() error
}

// Interface guards
var (
	_ store = (*storage.DB)(nil)
	_ store = (*postgres.DB)(nil)
)
