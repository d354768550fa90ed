package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

const secretA = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func enroll(t testing.TB, db *DB, user string) {
	t.Helper()
	create := func() (account.Enrollment, error) {
		return account.Enrollment{Secret: secretA, Expires: t0.Add(gateway.EnrollmentTTL)}, nil
	}
	if _, err := account.EnrollmentFor(db, user, 0, t0, create); err != nil {
		t.Fatal(err)
	}
	if err := account.ConfirmEnrollment(db, user, secretA, 1, nil, t0); err != nil {
		t.Fatal(err)
	}
}

// Rotation with instances running: every instance first learns the new key
// as an old one, then one restarts with the new key current and re-seals
// everything; instances still configured with the old key as current seal
// under the new one from then on, because they follow the database.
func TestRotation_InstancesAcceptBothKeysUntilEverySecretIsResealed(t *testing.T) {
	t.Parallel()
	dsn, schema := inSchema(t)
	oldKey, newKey := mustKey(t), mustKey(t)
	openTest(t, dsn, Options{Keys: []secrets.Key{oldKey}, Schema: schema})
	running := openTest(t, dsn, Options{Keys: []secrets.Key{oldKey, newKey}, Schema: schema})
	enroll(t, running, "alice")

	rotated := openTest(t, dsn, Options{Keys: []secrets.Key{newKey, oldKey}, Schema: schema})
	if a, err := running.Account("alice"); err != nil || a.TOTPSecret != secretA {
		t.Fatalf("an instance with both keys after the rotation: %+v, %v", a, err)
	}
	enroll(t, running, "bob") // sealed by an instance whose current key is the old one
	if db, err := Open(context.Background(), dsn, Options{Keys: []secrets.Key{newKey}, Schema: schema}); err != nil {
		t.Fatalf("the new key alone does not open the rotated database: %v", err)
	} else {
		db.Close()
	}
	for _, u := range []string{"alice", "bob"} {
		if a, err := rotated.Account(u); err != nil || a.TOTPSecret != secretA {
			t.Fatalf("%s after the rotation: %+v, %v", u, a, err)
		}
	}
	// Nothing is left under the old key.
	rows, err := rotated.pool.Query(context.Background(), "SELECT totp_secret FROM accounts WHERE totp_secret IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var sealed []byte
		if err := rows.Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if id, _ := secrets.SealedKeyID(sealed); id != newKey.KeyID() {
			t.Fatalf("a secret under %s after the rotation to %s", id, newKey.KeyID())
		}
	}
}
