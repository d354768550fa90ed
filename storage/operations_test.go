package storage

import (
	"errors"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

func TestSetPassword_CreatesADatabaseUserUnderItsCanonicalName(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	if err := db.SetPassword("  Alice ", []byte("$2a$14$hash")); err != nil {
		t.Fatal(err)
	}
	a, err := db.Account("alice")
	if err != nil || !a.Stored || string(a.PasswordHash) != "$2a$14$hash" || a.TOTPSecret != "" {
		t.Fatalf("Account(alice) = %+v, %v; want a stored user with the hash", a, err)
	}
	if err := db.SetPassword("alice", []byte("$2a$14$other")); err != nil {
		t.Fatal(err)
	}
	if a, _ := db.Account("alice"); string(a.PasswordHash) != "$2a$14$other" {
		t.Error("SetPassword did not replace the hash")
	}
	// The gateway admits sessions only of users that exist: the hot path
	// must see a database user as one.
	if st, err := db.SessionState("alice"); err != nil || !st.PasswordSet {
		t.Errorf("SessionState(alice) = %+v, %v; want PasswordSet", st, err)
	}
	if st, _ := db.SessionState("bob"); st.PasswordSet {
		t.Error("SessionState reports a password for a user without one")
	}
}

func TestSetPassword_RefusesEmptyNameOrHash(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	tests := []struct {
		name, user string
		hash       []byte
	}{
		{"empty name", "  ", []byte("$2a$14$hash")},
		{"empty hash", "alice", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.SetPassword(tt.user, tt.hash); err == nil {
				t.Error("SetPassword accepted it")
			}
		})
	}
}

func TestAccounts_SummarisesEveryAccountWithoutSecrets(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	if err := db.SetPassword("bob", []byte("$2a$14$hash")); err != nil {
		t.Fatal(err)
	}
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")
	if err := db.UseBackupCode("alice", []byte("hash-1")); err != nil {
		t.Fatal(err)
	}
	list, err := db.Accounts()
	if err != nil {
		t.Fatal(err)
	}
	want := []AccountSummary{
		{Name: "alice", TOTPEnabled: true, BackupCodesLeft: 1, MustRegenerate: true},
		{Name: "bob", HasPassword: true},
	}
	if len(list) != len(want) {
		t.Fatalf("Accounts = %+v, want %+v", list, want)
	}
	for i := range want {
		if list[i] != want[i] {
			t.Errorf("Accounts[%d] = %+v, want %+v", i, list[i], want[i])
		}
	}
}

func TestRemoveAccount_DeletesTheUserAndEndsItsSessions(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	if err := db.RemoveAccount("alice"); !errors.Is(err, gateway.ErrNotFound) {
		t.Errorf("RemoveAccount of an unknown user = %v, want ErrNotFound", err)
	}
	if err := db.SetPassword("alice", []byte("$2a$14$hash")); err != nil {
		t.Fatal(err)
	}
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")
	before, err := db.SessionState("alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RemoveAccount("Alice"); err != nil {
		t.Fatalf("RemoveAccount: %v", err)
	}
	a, err := db.Account("alice")
	if err != nil || a.Stored || a.PasswordHash != nil || a.TOTPSecret != "" {
		t.Errorf("Account after removal = %+v, %v; want nothing stored", a, err)
	}
	after, err := db.SessionState("alice")
	if err != nil || after.Generation <= before.Generation || after.TOTPEnabled {
		t.Errorf("SessionState after removal = %+v (before %+v), want a higher generation", after, before)
	}
	// Added again, the user does not get the old sessions back.
	if err := db.SetPassword("alice", []byte("$2a$14$new")); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.SessionState("alice"); st.Generation < after.Generation {
		t.Errorf("generation went back from %d to %d when the user was added again", after.Generation, st.Generation)
	}
	if list, _ := db.Accounts(); len(list) != 1 {
		t.Errorf("Accounts = %+v, want alice once", list)
	}
}

func TestResetTOTP_ForcesEnrollmentAndEndsSessions(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	if err := db.ResetTOTP("alice"); !errors.Is(err, gateway.ErrNotFound) {
		t.Errorf("ResetTOTP of an unknown user = %v, want ErrNotFound", err)
	}
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")
	if err := db.ResetTOTP("alice"); err != nil {
		t.Fatal(err)
	}
	a, err := db.Account("alice")
	if err != nil || a.TOTPSecret != "" || len(a.BackupCodes) != 0 || a.Generation != 1 {
		t.Errorf("after reset: %v, secret set %v, %d codes, generation %d; want none, none, 1", err, a.TOTPSecret != "", len(a.BackupCodes), a.Generation)
	}
	if st, _ := db.SessionState("alice"); st != (gateway.SessionState{Generation: 1}) {
		t.Errorf("SessionState after reset = %+v", st)
	}
}

// lockUp locks key with max 1 at t0 for window.
func lockUp(t *testing.T, db *DB, key string, window time.Duration) {
	t.Helper()
	a, lock, err := db.TakeAttempt(t0, window, []gateway.Limit{{Key: key, Max: 1}})
	if err != nil || lock != nil {
		t.Fatal(err, lock)
	}
	if locks, err := db.FailAttempt(a, t0, window); err != nil || len(locks) != 1 {
		t.Fatal(err, locks)
	}
}

func TestLocks_UnlockAndLockStateShowAndEndLocks(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	lockUp(t, db, "user:alice", 15*time.Minute)
	lockUp(t, db, "ip:192.0.2.1", 15*time.Minute)
	now := t0.Add(5 * time.Minute)

	lock, err := db.LockState("user:alice", now)
	if err != nil || lock == nil || lock.RetryAfter != 10*time.Minute {
		t.Fatalf("LockState = %+v, %v; want locked for 10m", lock, err)
	}
	if locks, err := db.Locks(now); err != nil || len(locks) != 2 {
		t.Errorf("Locks = %+v, %v; want 2", locks, err)
	}
	if err := db.Unlock("user:alice"); err != nil {
		t.Fatal(err)
	}
	if lock, err := db.LockState("user:alice", now); err != nil || lock != nil {
		t.Errorf("LockState after Unlock = %+v, %v; want none", lock, err)
	}
	if _, lock, err := db.TakeAttempt(now, 15*time.Minute, []gateway.Limit{{Key: "user:alice", Max: 1}}); err != nil || lock != nil {
		t.Errorf("TakeAttempt after Unlock refused: %+v, %v", lock, err)
	}
	if locks, _ := db.Locks(t0.Add(15 * time.Minute)); len(locks) != 0 {
		t.Errorf("Locks after the lock ended = %+v, want none", locks)
	}
	if err := db.Unlock("user:nobody"); err != nil {
		t.Errorf("Unlock of an unknown key = %v", err)
	}
}

func TestPruneCounters_DeletesOnlyCountersWhoseWindowAndLockAreOver(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	const window = 15 * time.Minute
	lockUp(t, db, "user:locked", window) // locked until t0+15m
	// A failure at t0+10m, window until t0+25m.
	a, _, err := db.TakeAttempt(t0.Add(10*time.Minute), window, []gateway.Limit{{Key: "user:recent", Max: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.FailAttempt(a, t0.Add(10*time.Minute), window); err != nil {
		t.Fatal(err)
	}
	// A slot taken at t0 and never given back, as after a crash.
	if _, _, err := db.TakeAttempt(t0, window, []gateway.Limit{{Key: "user:stuck", Max: 5}}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		at   time.Duration
		want int
		left []string
	}{
		{at: 5 * time.Minute, want: 0, left: []string{"user:locked", "user:recent", "user:stuck"}},
		{at: 15 * time.Minute, want: 2, left: []string{"user:recent"}},
		{at: 25 * time.Minute, want: 1},
	}
	for _, tt := range tests {
		n, err := db.PruneCounters(t0.Add(tt.at), window)
		if err != nil || n != tt.want {
			t.Errorf("PruneCounters at +%s = %d, %v; want %d", tt.at, n, err, tt.want)
		}
		for _, key := range tt.left {
			if c, err := db.Counter(key); err != nil || c.WindowStart.IsZero() {
				t.Errorf("at +%s counter %q is gone (%v), want it kept", tt.at, key, err)
			}
		}
	}
}

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
	db, err := Open(path, Options{Keys: []Key{oldKey}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		for i := range 30 {
			secret := crashSecret(i)
			create := func() (gateway.Enrollment, error) {
				return gateway.Enrollment{Secret: secret, Expires: t0.Add(time.Hour)}, nil
			}
			user := "user" + string(rune('a'+i))
			if _, err := db.PendingEnrollment(user, t0, create); err != nil {
				done <- err
				return
			}
			if err := db.ConfirmEnrollment(user, secret, 1, nil, t0); err != nil {
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

func TestTakeAttempt_RefusalOfALockedCounterWritesNothing(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	limits := []gateway.Limit{{Key: "user:x", Max: 1}}
	a, _, err := db.TakeAttempt(t0, time.Hour, limits)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.FailAttempt(a, t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	writes := func() int64 { st := db.bolt.Stats(); return st.TxStats.GetWrite() }
	before := writes()
	for range 50 {
		_, lock, err := db.TakeAttempt(t0.Add(time.Minute), time.Hour, limits)
		if err != nil || lock == nil {
			t.Fatalf("locked counter: lock %v, err %v", lock, err)
		}
	}
	if after := writes(); after != before {
		t.Fatalf("50 refusals of a locked counter wrote %d pages", after-before)
	}
}
