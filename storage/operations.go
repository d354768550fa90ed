package storage

import (
	"fmt"
	"io"

	"github.com/totp-auth/totp_auth/storage/secrets"
	bolt "go.etcd.io/bbolt"
)

// This file holds what only this store can do for an operator: rotate the
// encryption key and back the file up. What operators do to accounts and
// counters works on any store (package internal/operator).

// RotateKey re-encrypts every secret under key in one transaction: after
// it returns, key alone opens the database and the old key no longer does.
// The caller must make key the configured encryption_key before the next
// Open (and may list the old key after it until then, which is harmless).
func (db *DB) RotateKey(key secrets.Key) error {
	db.rotateMu.Lock()
	defer db.rotateMu.Unlock()
	// Add the key before sealing anything with it, so readers can open
	// what the rotation writes the moment it commits. If the rotation
	// fails, the committed canary still names the old key, and nothing is
	// sealed under the new one.
	keys, err := db.keys.Load().With(key)
	if err != nil {
		return fmt.Errorf("rotate to %s: %w", key, err)
	}
	db.keys.Store(keys)
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return reseal(tx, keys, key.KeyID()) }); err != nil {
		return fmt.Errorf("rotate to %s: %w", key, err)
	}
	return nil
}

// Backup writes a consistent copy of the database to w while it stays in
// use, and returns how many bytes it wrote. The copy holds secrets only
// encrypted, and needs the current key to be opened.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("back up %s: %w", db.path, err)
	}
	return n, nil
}
