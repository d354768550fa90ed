package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/storage/secrets"
)

// Secrets are sealed by package secrets, as the bbolt store seals them;
// this file seals under the key the database uses, and moves every secret
// to another key.

// reseal re-encrypts every secret in the database under the key with id
// to, and the canary last, all in tx.
func reseal(ctx context.Context, tx pgx.Tx, keys *secrets.Keyring, to secrets.KeyID) error {
	rows, err := tx.Query(ctx, `SELECT name, totp_secret, pending_secret FROM accounts
		WHERE totp_secret IS NOT NULL OR pending_secret IS NOT NULL FOR UPDATE`)
	if err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	type sealedRow struct {
		name          string
		totp, pending []byte
	}
	var list []sealedRow
	for rows.Next() {
		var s sealedRow
		if err := rows.Scan(&s.name, &s.totp, &s.pending); err != nil {
			return fmt.Errorf("list secrets: %w", err)
		}
		list = append(list, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	for _, s := range list {
		sealed, err := keys.ResealAccount(to, s.name, secrets.Sealed{TOTP: s.totp, Pending: s.pending})
		if err != nil {
			return err
		}
		s.totp, s.pending = sealed.TOTP, sealed.Pending
		if _, err := tx.Exec(ctx, "UPDATE accounts SET totp_secret = $2, pending_secret = $3 WHERE name = $1", s.name, s.totp, s.pending); err != nil {
			return fmt.Errorf("write account %q: %w", s.name, err)
		}
	}
	var hashKey, blockKey []byte
	err = tx.QueryRow(ctx, "SELECT hash_key, block_key FROM session_keys WHERE id = 1 FOR UPDATE").Scan(&hashKey, &blockKey)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read session keys: %w", err)
	default:
		if hashKey, err = keys.Reseal(to, secrets.PurposeSessionHash, "", hashKey); err != nil {
			return fmt.Errorf("re-encrypt session hash key: %w", err)
		}
		if blockKey, err = keys.Reseal(to, secrets.PurposeSessionBlock, "", blockKey); err != nil {
			return fmt.Errorf("re-encrypt session block key: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE session_keys SET hash_key = $1, block_key = $2 WHERE id = 1", hashKey, blockKey); err != nil {
			return fmt.Errorf("write session keys: %w", err)
		}
	}
	return writeCanary(ctx, tx, keys, to)
}

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
