package storage

import (
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

func TestRotateKey_ToTheCurrentKeyChangesNothing(t *testing.T) {
	path := tempPath(t)
	key := mustKey(t)
	db := openTest(t, path, key)
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")
	if err := db.RotateKey(key); err != nil {
		t.Fatal(err)
	}
	if a, err := db.Account("alice"); err != nil || a.TOTPSecret != "JBSWY3DPEHPK3PXP" {
		t.Errorf("Account after rotating to the same key: %v", err)
	}
}

func TestRotateKey_WhileWritesRunLosesNoSecret(t *testing.T) {
	path := tempPath(t)
	oldKey, newKey := mustKey(t), mustKey(t)
	db, err := Open(path, Options{Keys: []secrets.Key{oldKey}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		for i := range 30 {
			secret := crashSecret(i)
			create := func() (account.Enrollment, error) {
				return account.Enrollment{Secret: secret, Expires: t0.Add(time.Hour)}, nil
			}
			user := "user" + string(rune('a'+i))
			if _, err := account.EnrollmentFor(db, user, 0, t0, create); err != nil {
				done <- err
				return
			}
			if err := account.ConfirmEnrollment(db, user, secret, 1, nil, t0); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(5 * time.Millisecond)
	if err := db.RotateKey(newKey); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, path, newKey)
	for i := range 30 {
		if a, err := db.Account("user" + string(rune('a'+i))); err != nil || a.TOTPSecret != crashSecret(i) {
			t.Errorf("user %d after rotation during writes: %v", i, err)
		}
	}
}
