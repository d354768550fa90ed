// Package storage keeps totp_auth's state in one bbolt file: accounts
// (password hashes of users managed in the database, TOTP secrets, last
// accepted time steps, backup-code hashes, pending enrollments, session
// generations), the failure counters of the lockout, and the session cookie
// keys. It implements account.Store: it loads, locks and saves records in
// bbolt transactions and applies no rule of its own (those are package
// account's). It adds what only a file allows: key rotation and backup.
//
// Secrets (TOTP secrets, pending enrollment secrets, cookie keys) are kept
// only as AES-256-GCM ciphertext, sealed and opened by package secrets as
// the PostgreSQL store seals them. Every ciphertext names the key it was
// sealed with, and a canary sealed with the database's current key lets
// Open refuse a wrong key at once instead of failing users one by one later.
//
// It imports the model (package account), secrets and bbolt, and nothing
// of HTTP or Caddy.
package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/secrets"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// schemaVersion is the layout this code reads and writes. Raise it, and
// migrate in Open, whenever a bucket or a value changes shape.
//
//   - 1: meta, accounts, sessions, counters.
//   - 2: config_users and password_models, kept beside the accounts (index.go).
const schemaVersion = 2

// DefaultLockTimeout is how long Open waits for another process to release
// the database file when Options.LockTimeout is zero.
const DefaultLockTimeout = 5 * time.Second

// Buckets, and the keys of the meta bucket.
var (
	bucketMeta     = []byte("meta")
	bucketAccounts = []byte("accounts")
	bucketSessions = []byte("sessions")
	bucketCounters = []byte("counters")

	keySchema       = []byte("schema_version")
	keyCanary       = []byte("canary")
	keySessionHash  = []byte("session_hash_key")
	keySessionBlock = []byte("session_block_key")
)

// Options configures Open. The zero value is not enough: Keys needs one key.
type Options struct {
	// Keys are the encryption keys for the secrets at rest. Keys[0] is the
	// current key: Open re-encrypts, in one transaction, anything sealed
	// under one of the later keys with it, so configuring a new key first
	// and the old one after it rotates the key. Required.
	Keys []secrets.Key
	// LockTimeout is how long Open waits for another process that has the
	// file open. Zero means DefaultLockTimeout.
	LockTimeout time.Duration
}

// DB is the bbolt store. It is safe for concurrent use. Only one process
// may have the file open at a time.
type DB struct {
	bolt *bolt.DB
	path string

	// keys may grow (RotateKey) while transactions run, so it is swapped
	// whole, never changed in place. Which of its keys seals new
	// ciphertexts is read inside each transaction from the canary, so a
	// transaction never seals under a key the committed state does not use.
	keys     atomic.Pointer[secrets.Keyring]
	rotateMu sync.Mutex // one RotateKey at a time

	states sessionStates
}

// Interface guard.
var _ account.Store = (*DB)(nil)

// Open opens the database at path, creating it (mode 0600, its directory
// 0700) if needed. It fails when the file holds a newer schema than this
// code knows, or secrets under a key that is not among opts.Keys.
func Open(path string, opts Options) (*DB, error) {
	if len(opts.Keys) == 0 {
		return nil, fmt.Errorf("open %s: no encryption key configured", path)
	}
	keys, err := secrets.NewKeyring(opts.Keys)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create directory for %s: %w", path, err)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: another process holds the database (waited %s), probably a running Caddy with totp_auth: "+
			"stop it, or make the change through that Caddy (its admin API, which the `caddy totp-auth` commands use while it runs)", path, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db := &DB{bolt: b, path: path}
	db.keys.Store(keys)
	if err := b.Update(func(tx *bolt.Tx) error { return db.prepare(tx, opts.Keys[0]) }); err != nil {
		// The prepare error is what the operator needs to see.
		_ = b.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// Close closes the file. Transactions still running finish first.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close %s: %w", db.path, err)
	}
	return nil
}

// prepare checks the schema version and the key, creates missing buckets,
// and moves every secret to current if it is sealed under another key.
func (db *DB) prepare(tx *bolt.Tx, current secrets.Key) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return fmt.Errorf("create meta bucket: %w", err)
	}
	version := uint32(schemaVersion)
	switch v := meta.Get(keySchema); {
	case v == nil:
	case len(v) != 4:
		return fmt.Errorf("schema version is %d bytes long, want 4: this is not a totp_auth database, or it is damaged", len(v))
	case binary.BigEndian.Uint32(v) > schemaVersion:
		return fmt.Errorf("database schema version %d is newer than this build understands (%d): "+
			"run the totp_auth version that wrote it, or restore a backup made by this one", binary.BigEndian.Uint32(v), schemaVersion)
	case binary.BigEndian.Uint32(v) < 1:
		return fmt.Errorf("database schema version %d is older than any this build can migrate", binary.BigEndian.Uint32(v))
	default:
		version = binary.BigEndian.Uint32(v)
	}
	for _, name := range [][]byte{bucketAccounts, bucketSessions, bucketCounters} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	if version < 2 {
		// Version 1 kept no records beside the accounts: made once, here.
		if err := buildIndex(tx); err != nil {
			return fmt.Errorf("migrate to schema version 2: %w", err)
		}
	}
	for _, name := range [][]byte{bucketConfigUsers, bucketPasswordModels} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	if meta.Get(keySchema) == nil || version < schemaVersion {
		if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion)); err != nil {
			return fmt.Errorf("write schema version: %w", err)
		}
	}

	keys := db.keys.Load()
	to := current.KeyID()
	canary := meta.Get(keyCanary)
	if canary == nil {
		return writeCanary(tx, keys, to)
	}
	from, err := keys.CheckCanary(canary)
	if err != nil {
		return err
	}
	if from == to {
		return nil
	}
	return reseal(tx, keys, to)
}

func writeCanary(tx *bolt.Tx, keys *secrets.Keyring, id secrets.KeyID) error {
	sealed, err := keys.Seal(id, secrets.PurposeCanary, "", secrets.CanaryText)
	if err != nil {
		return fmt.Errorf("seal key canary: %w", err)
	}
	if err := tx.Bucket(bucketMeta).Put(keyCanary, sealed); err != nil {
		return fmt.Errorf("write key canary: %w", err)
	}
	return nil
}

// currentKey returns the id of the key new ciphertexts in tx are sealed
// under: the key of the committed canary.
func currentKey(tx *bolt.Tx) (secrets.KeyID, error) {
	id, err := secrets.SealedKeyID(tx.Bucket(bucketMeta).Get(keyCanary))
	if err != nil {
		return id, fmt.Errorf("read key canary: %w", err)
	}
	return id, nil
}

// reseal re-encrypts every secret in the database under the key with id
// to, and the canary last, all in tx.
func reseal(tx *bolt.Tx, keys *secrets.Keyring, to secrets.KeyID) error {
	accounts := tx.Bucket(bucketAccounts)
	var names [][]byte
	// Collect first: changing a bucket while iterating it is not allowed.
	if err := accounts.ForEach(func(k, _ []byte) error {
		names = append(names, bytes.Clone(k))
		return nil
	}); err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	for _, name := range names {
		user := string(name)
		rec, _, err := loadAccount(tx, user)
		if err != nil {
			return err
		}
		sealed, err := keys.ResealAccount(to, user, rec.sealed())
		if err != nil {
			return err
		}
		rec.TOTPSecret = sealed.TOTP
		if rec.Pending != nil {
			rec.Pending.Secret = sealed.Pending
		}
		if err := putAccountRecord(tx, user, rec); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	for _, f := range []struct {
		key     []byte
		purpose string
	}{{keySessionHash, secrets.PurposeSessionHash}, {keySessionBlock, secrets.PurposeSessionBlock}} {
		v, err := keys.Reseal(to, f.purpose, "", meta.Get(f.key))
		if err != nil {
			return fmt.Errorf("re-encrypt %s: %w", f.key, err)
		}
		if v == nil {
			continue
		}
		if err := meta.Put(f.key, v); err != nil {
			return fmt.Errorf("write %s: %w", f.key, err)
		}
	}
	return writeCanary(tx, keys, to)
}
