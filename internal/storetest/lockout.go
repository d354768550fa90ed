package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

const window = 15 * time.Minute

func Take(t *testing.T, s account.Store, now time.Time, limits ...account.Limit) (account.Attempt, *account.Lock) {
	t.Helper()
	a, lock, err := account.TakeAttempt(s, now, window, limits)
	if err != nil {
		t.Fatalf("TakeAttempt: %v", err)
	}
	if lock == nil && len(a.Limits) != len(limits) {
		t.Fatalf("TakeAttempt returned an attempt over %d limits, want %d", len(a.Limits), len(limits))
	}
	return a, lock
}

// MustTake takes an attempt that must not be refused.
func MustTake(t *testing.T, s account.Store, now time.Time, limits ...account.Limit) account.Attempt {
	t.Helper()
	a, lock := Take(t, s, now, limits...)
	if lock != nil {
		t.Fatalf("TakeAttempt at +%s refused by %q for %s, want a slot", now.Sub(T0), lock.Key, lock.RetryAfter)
	}
	return a
}

// MustRefuse takes an attempt that must be refused by key.
func MustRefuse(t *testing.T, s account.Store, now time.Time, key string, limits ...account.Limit) *account.Lock {
	t.Helper()
	_, lock := Take(t, s, now, limits...)
	if lock == nil {
		t.Fatalf("TakeAttempt at +%s got a slot, want refusal by %q", now.Sub(T0), key)
	}
	if lock.Key != key || lock.RetryAfter <= 0 {
		t.Fatalf("TakeAttempt refused by %q for %s, want %q with a positive RetryAfter", lock.Key, lock.RetryAfter, key)
	}
	return lock
}

func Fail(t *testing.T, s account.Store, a account.Attempt, now time.Time) []account.Lock {
	t.Helper()
	locks, err := account.FailAttempt(s, a, now, window)
	if err != nil {
		t.Fatalf("FailAttempt: %v", err)
	}
	return locks
}

// FailTimes records one failure under limit at each offset from T0 and
// returns the locks of the last one.
func FailTimes(t *testing.T, s account.Store, limit account.Limit, offsets ...time.Duration) []account.Lock {
	t.Helper()
	var locks []account.Lock
	for _, d := range offsets {
		locks = Fail(t, s, MustTake(t, s, T0.Add(d), limit), T0.Add(d))
	}
	return locks
}

func testConcurrentAttempts(t *testing.T, open func(t *testing.T) account.Store) {

	t.Run("100 concurrent attempts get at most max slots", func(t *testing.T) {
		s := open(t)
		limit := account.Limit{Key: "user:alice", Max: 5}
		var (
			mu      sync.Mutex
			got     int
			refused int
		)
		Concurrently(t, 100, nil, func() error {
			_, lock, err := account.TakeAttempt(s, T0, window, []account.Limit{limit})
			mu.Lock()
			defer mu.Unlock()
			if lock != nil {
				refused++
			} else if err == nil {
				got++
			}
			return err
		})
		if got != 5 || refused != 95 {
			t.Errorf("%d attempts got a slot and %d were refused, want 5 and 95", got, refused)
		}
	})
	t.Run("an attempt over several limits is taken everywhere or nowhere", func(t *testing.T) {
		s := open(t)
		userLimit := account.Limit{Key: "user:alice", Max: 2}
		ip := account.Limit{Key: "ip:192.0.2.1", Max: 1}
		MustTake(t, s, T0, ip)
		MustRefuse(t, s, T0, ip.Key, userLimit, ip)
		// The refused attempt must not have taken alice's slots.
		MustTake(t, s, T0, userLimit)
		MustTake(t, s, T0, userLimit)
		MustRefuse(t, s, T0, userLimit.Key, userLimit)
	})
	t.Run("concurrent failures are all counted", func(t *testing.T) {
		s := open(t)
		limit := account.Limit{Key: "user:alice", Max: 40}
		var (
			mu    sync.Mutex
			locks int
		)
		Concurrently(t, 40, nil, func() error {
			a, lock, err := account.TakeAttempt(s, T0, window, []account.Limit{limit})
			if err != nil {
				return err
			}
			if lock != nil {
				return errors.New("refused before max")
			}
			l, err := account.FailAttempt(s, a, T0, window)
			mu.Lock()
			defer mu.Unlock()
			locks += len(l)
			return err
		})
		if locks != 1 {
			t.Errorf("40 concurrent failures with max 40 returned %d locks, want 1", locks)
		}
		MustRefuse(t, s, T0, limit.Key, limit)
	})
}
