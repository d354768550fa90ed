package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/storage/secrets"
)

// This file holds what only this store can do for an operator: rotate the
// encryption key. What operators do to accounts and counters works on any
// store (package internal/operator), and every change of an account goes
// through the accounts table, whose trigger tells every running instance.

// RotateKey re-encrypts every secret under key in one transaction. Every
// instance must accept key (as an old key at least) before this runs, or
// it can no longer open what is re-encrypted.
func (db *DB) RotateKey(key secrets.Key) error {
	keys, err := db.keys.Load().With(key)
	if err != nil {
		return fmt.Errorf("rotate to %s: %w", key, err)
	}
	db.keys.Store(keys)
	err = db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", lockRotation, db.schema); err != nil {
			return err
		}
		return reseal(ctx, tx, keys, key.KeyID())
	})
	if err != nil {
		return fmt.Errorf("rotate to %s: %w", key, err)
	}
	return nil
}

// Backup is not offered for PostgreSQL: its own tools do it better.
func (db *DB) Backup(io.Writer) (int64, error) {
	return 0, errors.New("a PostgreSQL database is backed up with PostgreSQL's tools: run `pg_dump --schema=" + db.schema + "` against it")
}
