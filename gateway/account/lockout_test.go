package account_test

import (
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/storetest"
)

// These tests hold the lockout (counter.go), applied through a Store as the
// flow applies it (TakeAttempt and its siblings), to SPEC §4 rules 5 and 13.

func TestLockoutRules(t *testing.T) { testLockoutRules(t, openMemStore) }

const window = 15 * time.Minute

var (
	take       = storetest.Take
	mustTake   = storetest.MustTake
	mustRefuse = storetest.MustRefuse
	fail       = storetest.Fail
	failTimes  = storetest.FailTimes
)

func release(t *testing.T, s account.Store, a account.Attempt) {
	t.Helper()
	if err := account.ReleaseAttempt(s, a); err != nil {
		t.Fatalf("ReleaseAttempt: %v", err)
	}
}

func testLockoutRules(t *testing.T, open func(t *testing.T) account.Store) {
	user := account.Limit{Key: "user:alice", Max: 3}

	t.Run("slots are taken before the check so in-flight attempts count", func(t *testing.T) {
		s := open(t)
		for range user.Max {
			mustTake(t, s, t0, user)
		}
		mustRefuse(t, s, t0, user.Key, user)
	})
	t.Run("the failure reaching max locks for the window from that failure", func(t *testing.T) {
		s := open(t)
		if locks := failTimes(t, s, user, 0, time.Minute); len(locks) != 0 {
			t.Fatalf("locked after 2 of 3 failures: %+v", locks)
		}
		third := 5 * time.Minute
		locks := failTimes(t, s, user, third)
		if len(locks) != 1 || locks[0].Key != user.Key || locks[0].RetryAfter != window {
			t.Fatalf("third failure returned %+v, want one lock of %q for %s", locks, user.Key, window)
		}
		lock := mustRefuse(t, s, t0.Add(third+window-time.Second), user.Key, user)
		if lock.RetryAfter != time.Second {
			t.Errorf("1s before the lock ends RetryAfter = %s, want 1s", lock.RetryAfter)
		}
		mustTake(t, s, t0.Add(third+window), user)
	})
	t.Run("refused attempts neither count nor extend the lock", func(t *testing.T) {
		s := open(t)
		failTimes(t, s, user, 0, 0, 0)
		for i := range 10 {
			at := t0.Add(time.Duration(i) * time.Minute)
			lock := mustRefuse(t, s, at, user.Key, user)
			if want := window - time.Duration(i)*time.Minute; lock.RetryAfter != want {
				t.Errorf("refusal %d: RetryAfter %s, want %s", i, lock.RetryAfter, want)
			}
		}
		end := t0.Add(window)
		for range user.Max {
			mustTake(t, s, end, user)
		}
		mustRefuse(t, s, end, user.Key, user)
	})
	t.Run("a lock that ended leaves no failures behind", func(t *testing.T) {
		s := open(t)
		failTimes(t, s, user, 0, 0, 0)
		end := window
		if locks := failTimes(t, s, user, end, end+time.Second); len(locks) != 0 {
			t.Errorf("two failures after the lock ended locked again: %+v", locks)
		}
	})
	t.Run("released slots are given back", func(t *testing.T) {
		s := open(t)
		for range 10 {
			release(t, s, mustTake(t, s, t0, user))
		}
		held := []account.Attempt{mustTake(t, s, t0, user), mustTake(t, s, t0, user), mustTake(t, s, t0, user)}
		mustRefuse(t, s, t0, user.Key, user)
		release(t, s, held[1])
		mustTake(t, s, t0, user)
	})
	t.Run("a release leaves recorded failures in place", func(t *testing.T) {
		s := open(t)
		failTimes(t, s, user, 0, 0)
		release(t, s, mustTake(t, s, t0, user))
		if locks := failTimes(t, s, user, time.Second); len(locks) != 1 {
			t.Errorf("third failure after a release returned %+v, want a lock", locks)
		}
	})
	t.Run("failures expire with their window", func(t *testing.T) {
		s := open(t)
		failTimes(t, s, user, 0, time.Minute)
		if locks := failTimes(t, s, user, window, window+time.Minute); len(locks) != 0 {
			t.Errorf("failures in a new window locked together with the old ones: %+v", locks)
		}
		if locks := failTimes(t, s, user, window+2*time.Minute); len(locks) != 1 {
			t.Errorf("third failure in the new window returned %+v, want a lock", locks)
		}
	})
	t.Run("a release from an older window frees no slot of a newer one", func(t *testing.T) {
		s := open(t)
		one := account.Limit{Key: "user:alice", Max: 1}
		old := mustTake(t, s, t0, one)
		mustTake(t, s, t0.Add(window), one) // the old window is over: a new one starts
		release(t, s, old)
		mustRefuse(t, s, t0.Add(window), one.Key, one)
	})
	t.Run("a failure from an older window frees no slot of a newer one", func(t *testing.T) {
		s := open(t)
		two := account.Limit{Key: "user:alice", Max: 2}
		old := mustTake(t, s, t0, two)
		now := t0.Add(window)
		mustTake(t, s, now, two)
		fail(t, s, old, now)
		mustRefuse(t, s, now, two.Key, two)
	})
	t.Run("a lock on one limit refuses an attempt over several", func(t *testing.T) {
		s := open(t)
		ip := account.Limit{Key: "ip:192.0.2.1", Max: 10}
		failTimes(t, s, user, 0, 0, 0)
		mustRefuse(t, s, t0.Add(time.Minute), user.Key, ip, user)
		for range ip.Max {
			mustTake(t, s, t0.Add(time.Minute), ip)
		}
	})
	t.Run("a failure counts in every limit of the attempt and returns each lock", func(t *testing.T) {
		s := open(t)
		ip := account.Limit{Key: "ip:192.0.2.1", Max: 2}
		fail(t, s, mustTake(t, s, t0, user, ip), t0)
		locks := fail(t, s, mustTake(t, s, t0, user, ip), t0)
		if len(locks) != 1 || locks[0].Key != ip.Key {
			t.Fatalf("second failure returned %+v, want the ip lock", locks)
		}
		mustRefuse(t, s, t0, ip.Key, ip)
		locks = fail(t, s, mustTake(t, s, t0, user), t0)
		if len(locks) != 1 || locks[0].Key != user.Key {
			t.Errorf("third user failure returned %+v, want the user lock", locks)
		}
	})
	t.Run("both limits reaching max are both returned", func(t *testing.T) {
		s := open(t)
		a := account.Limit{Key: "user:alice", Max: 1}
		b := account.Limit{Key: "ip:192.0.2.1", Max: 1}
		locks := fail(t, s, mustTake(t, s, t0, a, b), t0)
		if len(locks) != 2 {
			t.Errorf("FailAttempt returned %+v, want two locks", locks)
		}
	})
	t.Run("counters of different keys are independent", func(t *testing.T) {
		s := open(t)
		failTimes(t, s, user, 0, 0, 0)
		bob := account.Limit{Key: "user:bob", Max: 3}
		mustTake(t, s, t0, bob)
	})
	t.Run("reset forgets the failures of the key", func(t *testing.T) {
		s := open(t)
		failTimes(t, s, user, 0, 0)
		if err := account.ResetFailures(s, user.Key); err != nil {
			t.Fatal(err)
		}
		if locks := failTimes(t, s, user, time.Second, time.Second); len(locks) != 0 {
			t.Errorf("two failures after a reset locked: %+v", locks)
		}
		if locks := failTimes(t, s, user, 2*time.Second); len(locks) != 1 {
			t.Errorf("third failure after a reset returned %+v, want a lock", locks)
		}
	})
	t.Run("reset of an unknown key succeeds", func(t *testing.T) {
		s := open(t)
		if err := account.ResetFailures(s, "user:nobody"); err != nil {
			t.Errorf("ResetFailures = %v", err)
		}
	})
	t.Run("an attempt with mismatched window starts is an error", func(t *testing.T) {
		s := open(t)
		a := mustTake(t, s, t0, user)
		a.WindowStarts = nil
		if err := account.ReleaseAttempt(s, a); err == nil {
			t.Error("ReleaseAttempt accepted an attempt without window starts")
		}
		if _, err := account.FailAttempt(s, a, t0, window); err == nil {
			t.Error("FailAttempt accepted an attempt without window starts")
		}
	})
}
