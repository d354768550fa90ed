package storage

import (
	"bytes"
	"fmt"

	"github.com/totp-auth/totp_auth/storage/secrets"
	bolt "go.etcd.io/bbolt"
)

// SessionKeys implements account.Store.
func (db *DB) SessionKeys(generate func() (hashKey, blockKey []byte, err error)) (hashKey, blockKey []byte, err error) {
	// Usually the keys exist: read them without taking the write lock.
	var found bool
	err = db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		hashKey, blockKey, found, err = db.readSessionKeys(tx)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read session keys: %w", err)
	}
	if found {
		return hashKey, blockKey, nil
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		var err error
		hashKey, blockKey, found, err = db.readSessionKeys(tx)
		if err != nil || found {
			return err // another caller stored them first
		}
		if hashKey, blockKey, err = generate(); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		id, err := currentKey(tx)
		if err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		keys := db.keys.Load()
		for _, f := range []struct {
			key     []byte
			purpose string
			value   []byte
		}{{keySessionHash, secrets.PurposeSessionHash, hashKey}, {keySessionBlock, secrets.PurposeSessionBlock, blockKey}} {
			sealed, err := keys.Seal(id, f.purpose, "", f.value)
			if err != nil {
				return fmt.Errorf("encrypt %s: %w", f.key, err)
			}
			if err := meta.Put(f.key, sealed); err != nil {
				return fmt.Errorf("write %s: %w", f.key, err)
			}
		}
		hashKey, blockKey = bytes.Clone(hashKey), bytes.Clone(blockKey)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store session keys: %w", err)
	}
	return hashKey, blockKey, nil
}

func (db *DB) readSessionKeys(tx *bolt.Tx) (hashKey, blockKey []byte, found bool, err error) {
	meta := tx.Bucket(bucketMeta)
	h, b := meta.Get(keySessionHash), meta.Get(keySessionBlock)
	if h == nil || b == nil {
		return nil, nil, false, nil
	}
	keys := db.keys.Load()
	if hashKey, err = keys.Open(secrets.PurposeSessionHash, "", h); err != nil {
		return nil, nil, false, fmt.Errorf("decrypt session hash key: %w", err)
	}
	if blockKey, err = keys.Open(secrets.PurposeSessionBlock, "", b); err != nil {
		return nil, nil, false, fmt.Errorf("decrypt session block key: %w", err)
	}
	return hashKey, blockKey, true, nil
}
