package storage

import (
	"encoding/binary"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/operator"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

func TestOpen_SchemaVersion1GainsTheRecordsBesideTheAccounts(t *testing.T) {
	path, key := tempPath(t), mustKey(t)
	db, err := Open(path, Options{Keys: []secrets.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	cheap, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dearer, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost+1)
	if err != nil {
		t.Fatal(err)
	}
	for name, hash := range map[string][]byte{"alice": cheap, "bob": cheap, "carol": dearer} {
		if err := operator.SetPassword(db, name, hash); err != nil {
			t.Fatal(err)
		}
	}
	if err := account.MarkConfigUsers(db, map[string]bool{"dave": true}); err != nil {
		t.Fatal(err)
	}
	// What version 1 wrote: the same accounts, no records beside them.
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketConfigUsers, bucketPasswordModels} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, 1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openTest(t, path, key)
	names, err := db.ConfigUsers()
	if err != nil || !reflect.DeepEqual(names, []string{"dave"}) {
		t.Errorf("ConfigUsers after the migration = %q, %v; want dave", names, err)
	}
	models, err := db.PasswordModels()
	if err != nil || len(models) != 2 {
		t.Fatalf("PasswordModels after the migration = %q, %v; want the two kinds", models, err)
	}
	for _, hash := range [][]byte{cheap, dearer} {
		if m := account.HashModel(hash); m != models[0] && m != models[1] {
			t.Errorf("PasswordModels = %q lacks %q", models, m)
		}
	}
	// The counts are right too: the last cheap hash takes its model along.
	for _, name := range []string{"alice", "bob"} {
		if err := operator.RemoveAccount(db, name); err != nil {
			t.Fatal(err)
		}
	}
	if models, err := db.PasswordModels(); err != nil || !reflect.DeepEqual(models, []string{account.HashModel(dearer)}) {
		t.Errorf("PasswordModels after removing both cheap hashes = %q, %v; want the dearer one", models, err)
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema)); v != schemaVersion {
			t.Errorf("schema version after the migration = %d, want %d", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
