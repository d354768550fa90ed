package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/pgtest"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

func TestOpen_RequiresEncryptionKey(t *testing.T) {
	t.Parallel()
	// Open refuses before it connects: the database is never reached.
	_, err := Open(context.Background(), "host=/nonexistent dbname=none", Options{})
	if err == nil || !strings.Contains(err.Error(), "encryption_key") {
		t.Fatalf("Open without a key: %v, want an error naming encryption_key", err)
	}
}

func TestOpen_ConnectionStringNotRepeatedInErrors(t *testing.T) {
	t.Parallel()
	_, err := Open(context.Background(), "postgres://u:hunter2@[::1", Options{Keys: []secrets.Key{mustKey(t)}})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open with a malformed URL: %v, want an error without the password", err)
	}
}

func TestOpen_InstancesStartingAtOnceOnAnEmptySchema(t *testing.T) {
	t.Parallel()
	dsn, schema := inSchema(t)
	key := mustKey(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(context.Background(), dsn, Options{Keys: []secrets.Key{key}, Schema: schema})
			if err == nil {
				err = db.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
}

func TestOpen_RefusesANewerSchema(t *testing.T) {
	t.Parallel()
	dsn, schema := inSchema(t)
	key := mustKey(t)
	openTest(t, dsn, Options{Keys: []secrets.Key{key}, Schema: schema})
	pgtest.Exec(t, dsn, "UPDATE "+schema+".schema_version SET version = version + 1")
	_, err := Open(context.Background(), dsn, Options{Keys: []secrets.Key{key}, Schema: schema})
	if err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Fatalf("Open on a newer schema: %v, want a refusal", err)
	}
}

func TestOpen_RefusesAKeyThatDoesNotOpenTheDatabase(t *testing.T) {
	t.Parallel()
	dsn, schema := inSchema(t)
	key, other := mustKey(t), mustKey(t)
	openTest(t, dsn, Options{Keys: []secrets.Key{key}, Schema: schema})
	_, err := Open(context.Background(), dsn, Options{Keys: []secrets.Key{other}, Schema: schema})
	if err == nil || !strings.Contains(err.Error(), key.ID()) || !strings.Contains(err.Error(), other.ID()) {
		t.Fatalf("Open with another key: %v, want an error naming both key ids", err)
	}
}

func TestOpen_SchemasKeepDeploymentsApart(t *testing.T) {
	t.Parallel()
	dsn, siteA := inSchema(t)
	_, siteB := inSchema(t)
	a := openTest(t, dsn, Options{Keys: []secrets.Key{mustKey(t)}, Schema: siteA})
	b := openTest(t, dsn, Options{Keys: []secrets.Key{mustKey(t)}, Schema: siteB})
	if _, err := account.BumpGeneration(a, "alice"); err != nil {
		t.Fatal(err)
	}
	if acc, err := b.Account("alice"); err != nil || acc.Stored {
		t.Fatalf("schema %s sees %s's alice: %+v, %v", siteB, siteA, acc, err)
	}
}

// The secrets are sealed as the bbolt store seals them: the same key opens
// them with the same additional data.
func TestSecrets_SealedLikeTheBboltStore(t *testing.T) {
	t.Parallel()
	dsn, schema := inSchema(t)
	key := mustKey(t)
	db := openTest(t, dsn, Options{Keys: []secrets.Key{key}, Schema: schema})
	enroll(t, db, "alice")

	ctx := context.Background()
	var sealed []byte
	if err := db.pool.QueryRow(ctx, "SELECT totp_secret FROM accounts WHERE name = 'alice'").Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), secretA) {
		t.Fatal("the TOTP secret is stored in plain text")
	}
	ring, err := secrets.NewKeyring([]secrets.Key{key})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ring.Open(secrets.PurposeTOTPSecret, "alice", sealed)
	if err != nil || string(plain) != secretA {
		t.Fatalf("open the stored secret: %q, %v", plain, err)
	}
}
