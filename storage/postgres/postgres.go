// Package postgres keeps totp_auth's state in PostgreSQL, so that several
// Caddy instances share one set of accounts, failure counters, revocations
// and session keys. It implements account.Store and only loads, locks and
// saves: every rule is package account's, applied by the gateway.
//
// Atomicity across instances comes from the database: an account is changed
// under `SELECT … FOR UPDATE` on its row, failure counters under
// transaction-scoped advisory locks taken in sorted order. Secrets are sealed
// exactly as the bbolt store seals them (package secrets), so a database
// copied from bbolt opens with the same key.
//
// A request with a session costs no round trip: SessionState answers from
// memory, kept current by notifications a trigger sends on every change of
// an account (whoever makes it: an instance, the `caddy totp-auth` commands
// or SQL typed by hand), with a heartbeat that proves the notification
// connection is alive. When memory cannot be trusted it asks the database,
// and when the database does not answer it returns an error, so the gateway
// refuses the request rather than trusting stale state.
//
// The notification connection needs a session of its own: behind PgBouncer
// in transaction mode LISTEN does not work, so point the connection string
// at PostgreSQL itself (or at PgBouncer in session mode).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// defaultMaxConns is the size of the connection pool unless the
// connection string sets pool_max_conns.
const defaultMaxConns = 16

// DefaultSchema is where the tables live when Options.Schema is empty.
const DefaultSchema = "totp_auth"

// opTimeout bounds every database call a request makes, so a database that
// hangs answers requests with an error (the gateway fails closed) instead
// of holding them.
const opTimeout = 5 * time.Second

// Options configures Open.
type Options struct {
	// Keys are the encryption keys for the secrets at rest. Keys[0] is the
	// current key: Open re-encrypts, in one transaction, anything sealed
	// under a later key with it. Required.
	Keys []secrets.Key
	// Schema is the PostgreSQL schema of the tables; it also names the
	// notification channels, so several deployments can share a database.
	// Empty means DefaultSchema.
	Schema string
	// Lease is how long SessionState trusts its memory after the last
	// heartbeat arrived. Zero means DefaultLease.
	Lease time.Duration
	// Heartbeat is how often a heartbeat is sent. Zero means
	// DefaultHeartbeat.
	Heartbeat time.Duration
}

// DB is the PostgreSQL store. It is safe for concurrent use, and several
// processes may use the same database at once.
type DB struct {
	pool   *pgxpool.Pool
	schema string
	keys   atomic.Pointer[secrets.Keyring]

	cache *cache

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	// Set only by tests, before the instance is used:
	// testHookLocked runs after UpdateAccount has read (and locked) the
	// row and before it changes it: a test of a race widens the window.
	// testHookFill runs between a miss's read and its store into memory:
	// a test changes the user there.
	testHookLocked func()
	testHookFill   func(user string)
}

// Interface guard.
var _ account.Store = (*DB)(nil)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

// Open connects to the database named by connString (a libpq keyword/value
// string or a postgres:// URL), creates or migrates the schema, checks the
// key, and starts listening for changes. It fails when the schema is newer
// than this code, or the secrets are sealed under a key not in opts.Keys.
func Open(ctx context.Context, connString string, opts Options) (*DB, error) {
	if len(opts.Keys) == 0 {
		return nil, errors.New("postgres: no encryption key configured: set encryption_key (64 hexadecimal characters, `openssl rand -hex 32`); with postgres it is required, since every instance must share it")
	}
	keys, err := secrets.NewKeyring(opts.Keys)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	schema := opts.Schema
	if schema == "" {
		schema = DefaultSchema
	}
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("postgres: schema name %q is not a lower-case SQL identifier of letters, digits and _", schema)
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// pgx's message may quote the string, password included.
		return nil, errors.New("postgres: the connection string does not parse: write it as a libpq keyword/value string (host=… dbname=…) or a postgres:// URL")
	}
	if !strings.Contains(connString, "pool_max_conns") {
		// pgx's default (4 on small machines) is too few once requests
		// queue for a contended lock: heartbeats would queue behind them.
		cfg.MaxConns = defaultMaxConns
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.ConnConfig.RuntimeParams["application_name"] = "totp_auth"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := &DB{pool: pool, schema: schema}
	db.keys.Store(keys)
	db.ctx, db.cancel = context.WithCancel(context.Background())
	if err := db.migrate(ctx, opts.Keys[0]); err != nil {
		db.cancel()
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", describe(cfg.ConnConfig), err)
	}
	var notifyKey []byte
	if err := pool.QueryRow(ctx, "SELECT value FROM meta WHERE name = 'notify_key'").Scan(&notifyKey); err != nil {
		db.cancel()
		pool.Close()
		return nil, fmt.Errorf("postgres %s: read the notification key: %w", describe(cfg.ConnConfig), err)
	}
	db.cache = newCache(db, cfg.ConnConfig, opts.Lease, opts.Heartbeat, notifyKey)
	db.cache.start()
	return db, nil
}

// describe names the database without the password, for error messages.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("database %q on %s:%d as %q", c.Database, c.Host, c.Port, c.User)
}

// Close stops listening and closes every connection.
func (db *DB) Close() error {
	db.cancel()
	db.cache.stop()
	db.pool.Close()
	return nil
}

// op returns the context one database call of a request runs under.
func (db *DB) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(db.ctx, opTimeout)
}

// inTx runs fn in one transaction and commits it unless fn fails.
func (db *DB) inTx(fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := db.op()
	defer cancel()
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
}

// Describe names the database connString points at, without its password,
// for logs and messages; "" if it does not parse.
func Describe(connString string) string {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return ""
	}
	return "postgres " + describe(cfg)
}
