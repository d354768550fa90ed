package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Two small records kept beside the accounts, so that start-up and reload
// never read every account (SPEC §6): the names a `user` line marked
// (ConfigUsers) and how many accounts have each kind of password hash
// (PasswordModels). UpdateAccount keeps them in the same transaction as
// the account it saves.
var (
	// bucketConfigUsers holds one empty value under each name whose
	// account has ConfigUser set.
	bucketConfigUsers = []byte("config_users")
	// bucketPasswordModels holds, under each account.HashModel of a stored
	// password hash, how many accounts have it (8 bytes, big-endian).
	bucketPasswordModels = []byte("password_models")
)

// indexed is what the two records know of one account.
type indexed struct {
	configUser bool
	model      string
}

// indexOf is what the records hold of rec; nothing for no record.
func indexOf(rec accountRecord, stored bool) indexed {
	if !stored {
		return indexed{}
	}
	return indexed{configUser: rec.ConfigUser, model: account.HashModel(rec.PasswordHash)}
}

// reindex moves user in the records from was to is.
func reindex(tx *bolt.Tx, user string, was, is indexed) error {
	if was.configUser != is.configUser {
		b := tx.Bucket(bucketConfigUsers)
		var err error
		if is.configUser {
			err = b.Put([]byte(user), []byte{})
		} else {
			err = b.Delete([]byte(user))
		}
		if err != nil {
			return fmt.Errorf("write the `user` line mark of %q: %w", user, err)
		}
	}
	if was.model != is.model {
		if err := countModel(tx, was.model, -1); err != nil {
			return err
		}
		if err := countModel(tx, is.model, +1); err != nil {
			return err
		}
	}
	return nil
}

// countModel adds delta to the accounts counted under model; a count that
// reaches zero is deleted. The model "" (no password) is not counted.
func countModel(tx *bolt.Tx, model string, delta int64) error {
	if model == "" {
		return nil
	}
	b := tx.Bucket(bucketPasswordModels)
	var n int64
	if v := b.Get([]byte(model)); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += delta
	var err error
	if n <= 0 {
		err = b.Delete([]byte(model))
	} else {
		err = b.Put([]byte(model), binary.BigEndian.AppendUint64(nil, uint64(n)))
	}
	if err != nil {
		return fmt.Errorf("count password hashes of one kind: %w", err)
	}
	return nil
}

// buildIndex fills the records from every account, once, when a database
// of schema version 1 is opened.
func buildIndex(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketConfigUsers, bucketPasswordModels} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	var names [][]byte
	// Collect first: changing a bucket while iterating it is not allowed.
	if err := tx.Bucket(bucketAccounts).ForEach(func(k, _ []byte) error {
		names = append(names, bytes.Clone(k))
		return nil
	}); err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	for _, name := range names {
		rec, stored, err := loadAccount(tx, string(name))
		if err != nil {
			return err
		}
		if err := reindex(tx, string(name), indexed{}, indexOf(rec, stored)); err != nil {
			return err
		}
	}
	return nil
}

// ConfigUsers implements account.Store.
func (db *DB) ConfigUsers() ([]string, error) {
	var names []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		names = nil
		return tx.Bucket(bucketConfigUsers).ForEach(func(k, _ []byte) error {
			names = append(names, string(k)) // string() copies out of bbolt's memory
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list the names of `user` lines: %w", err)
	}
	return names, nil
}

// PasswordModels implements account.Store.
func (db *DB) PasswordModels() ([]string, error) {
	var models []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		models = nil
		return tx.Bucket(bucketPasswordModels).ForEach(func(k, _ []byte) error {
			models = append(models, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list the kinds of password hashes: %w", err)
	}
	return models, nil
}
