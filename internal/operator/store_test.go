package operator

import (
	"errors"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/memstore"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// enroll gives user an enabled TOTP secret and two backup codes.
func enroll(t testing.TB, db account.Store, user, secret string) {
	t.Helper()
	create := func() (account.Enrollment, error) {
		return account.Enrollment{Secret: secret, Expires: t0.Add(gateway.EnrollmentTTL)}, nil
	}
	if _, err := account.EnrollmentFor(db, user, 0, t0, create); err != nil {
		t.Fatalf("PendingEnrollment: %v", err)
	}
	if err := account.ConfirmEnrollment(db, user, secret, 100, [][]byte{[]byte("hash-1"), []byte("hash-2")}, t0); err != nil {
		t.Fatalf("ConfirmEnrollment: %v", err)
	}
}

func TestSetPassword_CreatesADatabaseUserUnderItsCanonicalName(t *testing.T) {
	db := memstore.New()
	if err := SetPassword(db, "  Alice ", []byte("$2a$14$hash")); err != nil {
		t.Fatal(err)
	}
	a, err := db.Account("alice")
	if err != nil || !a.Stored || string(a.PasswordHash) != "$2a$14$hash" || a.TOTPSecret != "" {
		t.Fatalf("Account(alice) = %+v, %v; want a stored user with the hash", a, err)
	}
	if err := SetPassword(db, "alice", []byte("$2a$14$other")); err != nil {
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
	db := memstore.New()
	tests := []struct {
		name, user string
		hash       []byte
	}{
		{"empty name", "  ", []byte("$2a$14$hash")},
		{"empty hash", "alice", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := SetPassword(db, tt.user, tt.hash); err == nil {
				t.Error("SetPassword accepted it")
			}
		})
	}
}

func TestAccounts_SummarisesEveryAccountWithoutSecrets(t *testing.T) {
	db := memstore.New()
	if err := SetPassword(db, "bob", []byte("$2a$14$hash")); err != nil {
		t.Fatal(err)
	}
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")
	if err := account.UseBackupCode(db, "alice", []byte("hash-1")); err != nil {
		t.Fatal(err)
	}
	list, err := Accounts(db)
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
	db := memstore.New()
	if err := RemoveAccount(db, "alice"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("RemoveAccount of an unknown user = %v, want ErrNotFound", err)
	}
	if err := SetPassword(db, "alice", []byte("$2a$14$hash")); err != nil {
		t.Fatal(err)
	}
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")
	before, err := db.SessionState("alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := RemoveAccount(db, "Alice"); err != nil {
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
	if err := SetPassword(db, "alice", []byte("$2a$14$new")); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.SessionState("alice"); st.Generation < after.Generation {
		t.Errorf("generation went back from %d to %d when the user was added again", after.Generation, st.Generation)
	}
	if list, _ := Accounts(db); len(list) != 1 {
		t.Errorf("Accounts = %+v, want alice once", list)
	}
}

func TestResetTOTP_ForcesEnrollmentAndEndsSessions(t *testing.T) {
	db := memstore.New()
	if err := ResetTOTP(db, "alice"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("ResetTOTP of an unknown user = %v, want ErrNotFound", err)
	}
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")
	if err := ResetTOTP(db, "alice"); err != nil {
		t.Fatal(err)
	}
	a, err := db.Account("alice")
	if err != nil || a.TOTPSecret != "" || len(a.BackupCodes) != 0 || a.Generation != 1 {
		t.Errorf("after reset: %v, secret set %v, %d codes, generation %d; want none, none, 1", err, a.TOTPSecret != "", len(a.BackupCodes), a.Generation)
	}
	if st, _ := db.SessionState("alice"); st != (account.SessionState{Generation: 1}) {
		t.Errorf("SessionState after reset = %+v", st)
	}
}

// lockUp locks key with max 1 at t0 for window.
func lockUp(t *testing.T, db account.Store, key string, window time.Duration) {
	t.Helper()
	a, lock, err := account.TakeAttempt(db, t0, window, []account.Limit{{Key: key, Max: 1}})
	if err != nil || lock != nil {
		t.Fatal(err, lock)
	}
	if locks, err := account.FailAttempt(db, a, t0, window); err != nil || len(locks) != 1 {
		t.Fatal(err, locks)
	}
}

func TestLocks_UnlockAndLockStateShowAndEndLocks(t *testing.T) {
	db := memstore.New()
	lockUp(t, db, "user:alice", 15*time.Minute)
	lockUp(t, db, "ip:192.0.2.1", 15*time.Minute)
	now := t0.Add(5 * time.Minute)

	lock, err := LockState(db, "user:alice", now)
	if err != nil || lock == nil || lock.RetryAfter != 10*time.Minute {
		t.Fatalf("LockState = %+v, %v; want locked for 10m", lock, err)
	}
	if locks, err := Locks(db, now); err != nil || len(locks) != 2 {
		t.Errorf("Locks = %+v, %v; want 2", locks, err)
	}
	if err := Unlock(db, "user:alice"); err != nil {
		t.Fatal(err)
	}
	if lock, err := LockState(db, "user:alice", now); err != nil || lock != nil {
		t.Errorf("LockState after Unlock = %+v, %v; want none", lock, err)
	}
	if _, lock, err := account.TakeAttempt(db, now, 15*time.Minute, []account.Limit{{Key: "user:alice", Max: 1}}); err != nil || lock != nil {
		t.Errorf("TakeAttempt after Unlock refused: %+v, %v", lock, err)
	}
	if locks, _ := Locks(db, t0.Add(15*time.Minute)); len(locks) != 0 {
		t.Errorf("Locks after the lock ended = %+v, want none", locks)
	}
	if err := Unlock(db, "user:nobody"); err != nil {
		t.Errorf("Unlock of an unknown key = %v", err)
	}
}

func TestPruneCounters_DeletesOnlyCountersWhoseWindowAndLockAreOver(t *testing.T) {
	db := memstore.New()
	const window = 15 * time.Minute
	lockUp(t, db, "user:locked", window) // locked until t0+15m
	// A failure at t0+10m, window until t0+25m.
	a, _, err := account.TakeAttempt(db, t0.Add(10*time.Minute), window, []account.Limit{{Key: "user:recent", Max: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := account.FailAttempt(db, a, t0.Add(10*time.Minute), window); err != nil {
		t.Fatal(err)
	}
	// A slot taken at t0 and never given back, as after a crash.
	if _, _, err := account.TakeAttempt(db, t0, window, []account.Limit{{Key: "user:stuck", Max: 5}}); err != nil {
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
		n, err := PruneCounters(db, t0.Add(tt.at), window)
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
