package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/storage/secrets"
)

// SessionKeys implements account.Store. The first instance to get here
// stores its keys; every other one reads them.
func (db *DB) SessionKeys(generate func() (hashKey, blockKey []byte, err error)) (hashKey, blockKey []byte, err error) {
	err = db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		var h, b []byte
		err := tx.QueryRow(ctx, "SELECT hash_key, block_key FROM session_keys WHERE id = 1").Scan(&h, &b)
		if errors.Is(err, pgx.ErrNoRows) {
			if h, b, err = db.storeSessionKeys(ctx, tx, generate); err != nil {
				return err
			}
		} else if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		keys := db.keys.Load()
		if hashKey, err = keys.Open(secrets.PurposeSessionHash, "", h); err != nil {
			return fmt.Errorf("decrypt session hash key: %w", err)
		}
		if blockKey, err = keys.Open(secrets.PurposeSessionBlock, "", b); err != nil {
			return fmt.Errorf("decrypt session block key: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("session keys: %w", err)
	}
	return hashKey, blockKey, nil
}

// storeSessionKeys inserts generated keys unless another instance did
// first, and returns the sealed keys that are stored.
func (db *DB) storeSessionKeys(ctx context.Context, tx pgx.Tx, generate func() ([]byte, []byte, error)) (h, b []byte, err error) {
	hashKey, blockKey, err := generate()
	if err != nil {
		return nil, nil, fmt.Errorf("generate: %w", err)
	}
	id, err := currentKey(ctx, tx)
	if err != nil {
		return nil, nil, err
	}
	keys := db.keys.Load()
	if h, err = keys.Seal(id, secrets.PurposeSessionHash, "", hashKey); err != nil {
		return nil, nil, fmt.Errorf("encrypt session hash key: %w", err)
	}
	if b, err = keys.Seal(id, secrets.PurposeSessionBlock, "", blockKey); err != nil {
		return nil, nil, fmt.Errorf("encrypt session block key: %w", err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO session_keys (id, hash_key, block_key) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING", h, b); err != nil {
		return nil, nil, fmt.Errorf("write: %w", err)
	}
	if err := tx.QueryRow(ctx, "SELECT hash_key, block_key FROM session_keys WHERE id = 1").Scan(&h, &b); err != nil {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	return h, b, nil
}
