package postgres

import (
	"reflect"
	"sort"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/pgtest"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

func TestOpen_SchemaVersion3GainsTheCountOfPasswordModels(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	key := mustKey(t)
	db := openTest(t, dsn, Options{Keys: []secrets.Key{key}})
	cheap, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dearer, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost+1)
	if err != nil {
		t.Fatal(err)
	}
	for name, hash := range map[string][]byte{"alice": cheap, "bob": cheap, "carol": dearer} {
		if err := db.UpdateAccount(name, func(a *account.Account) error { a.SetPassword(hash); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := account.MarkConfigUsers(db, map[string]bool{"dave": true}); err != nil {
		t.Fatal(err)
	}
	// What version 3 had: the same accounts, neither the index nor the
	// table, nor the columns of the versions after 4.
	pgtest.Exec(t, dsn, `DROP INDEX totp_auth.accounts_config_users; DROP TABLE totp_auth.password_models;
		ALTER TABLE totp_auth.accounts DROP COLUMN app_passwords, DROP COLUMN app_password_use,
			DROP COLUMN sessions, DROP COLUMN devices, DROP COLUMN passkeys, DROP COLUMN spent_challenges;
		UPDATE totp_auth.schema_version SET version = 3`)

	db = openTest(t, dsn, Options{Keys: []secrets.Key{key}})
	if names, err := db.ConfigUsers(); err != nil || !reflect.DeepEqual(names, []string{"dave"}) {
		t.Errorf("ConfigUsers after the migration = %q, %v; want dave", names, err)
	}
	want := []string{account.HashModel(cheap), account.HashModel(dearer)}
	sort.Strings(want)
	models, err := db.PasswordModels()
	sort.Strings(models)
	if err != nil || !reflect.DeepEqual(models, want) {
		t.Fatalf("PasswordModels after the migration = %q, %v; want %q", models, err, want)
	}
	// The counts are right too: the last cheap hash takes its model along.
	for _, name := range []string{"alice", "bob"} {
		if err := db.UpdateAccount(name, func(a *account.Account) error { return a.Remove() }); err != nil {
			t.Fatal(err)
		}
	}
	if models, err := db.PasswordModels(); err != nil || !reflect.DeepEqual(models, []string{account.HashModel(dearer)}) {
		t.Errorf("PasswordModels after removing both cheap hashes = %q, %v; want the dearer one", models, err)
	}
}
