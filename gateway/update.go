package gateway

import (
	"errors"
	"fmt"
	"time"
)

// This file applies the rules of changes.go and counter.go through a Store:
// each function is one Store.UpdateAccount or Store.UpdateCounters. They
// are exported so that operator tools and the store conformance suite
// change a store exactly as the sign-in flow does.

// errUnchanged ends an update that has nothing to save; the functions
// below report it as success.
var errUnchanged = errors.New("nothing to change")

func update(s Store, user string, fn func(*Account) error) error {
	if err := s.UpdateAccount(user, fn); err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	return nil
}

// PendingEnrollment returns the user's enrollment if it is still valid at
// now; otherwise it stores the result of create and returns that.
func PendingEnrollment(s Store, user string, now time.Time, create func() (Enrollment, error)) (Enrollment, error) {
	var e Enrollment
	err := update(s, user, func(a *Account) error {
		if p, ok := a.PendingAt(now); ok {
			e = p
			return errUnchanged
		}
		fresh, err := create()
		if err != nil {
			return fmt.Errorf("create enrollment for %q: %w", user, err)
		}
		a.Pending, e = &fresh, fresh
		return nil
	})
	if err != nil {
		return Enrollment{}, err
	}
	return e, nil
}

// EnrollmentFor returns the user's enrollment if it is still valid at now
// and belongs to session (0: a first sign-in); otherwise it stores the
// result of create, bound to session, in its place and returns that. A
// secret one session asked for is never handed to another (SPEC §4 rule 21).
func EnrollmentFor(s Store, user string, session uint64, now time.Time, create func() (Enrollment, error)) (Enrollment, error) {
	var e Enrollment
	err := update(s, user, func(a *Account) error {
		if p, ok := a.PendingAt(now); ok && p.Session == session {
			e = p
			return errUnchanged
		}
		fresh, err := create()
		if err != nil {
			return fmt.Errorf("create enrollment for %q: %w", user, err)
		}
		fresh.Session = session
		a.Pending, e = &fresh, fresh
		return nil
	})
	if err != nil {
		return Enrollment{}, err
	}
	return e, nil
}

// ConfirmEnrollment applies Account.ConfirmEnrollment to the user's account.
func ConfirmEnrollment(s Store, user, secret string, step int64, backupHashes [][]byte, now time.Time) error {
	return update(s, user, func(a *Account) error { return a.ConfirmEnrollment(secret, step, backupHashes, now) })
}

// AcceptStep applies Account.AcceptStep to the user's account.
func AcceptStep(s Store, user string, step int64) error {
	return update(s, user, func(a *Account) error { return a.AcceptStep(step) })
}

// UseBackupCode applies Account.SpendBackupCode to the user's account.
func UseBackupCode(s Store, user string, hash []byte) error {
	return update(s, user, func(a *Account) error { return a.SpendBackupCode(hash) })
}

// Recover applies Account.Recover to the user's account and returns the
// generation the session it names starts with.
func Recover(s Store, user string, hash []byte, session uint64) (uint64, error) {
	var gen uint64
	err := update(s, user, func(a *Account) error {
		if err := a.Recover(hash, session); err != nil {
			return err
		}
		gen = a.Generation
		return nil
	})
	return gen, err
}

// ReplaceBackupCodes applies Account.ReplaceBackupCodes to the user's account.
func ReplaceBackupCodes(s Store, user string, backupHashes [][]byte) error {
	return update(s, user, func(a *Account) error {
		a.ReplaceBackupCodes(backupHashes)
		return nil
	})
}

// DisableTOTP applies Account.DisableTOTP to the user's account, if there is one.
func DisableTOTP(s Store, user string) error {
	return update(s, user, func(a *Account) error {
		if !a.Stored {
			return errUnchanged
		}
		a.DisableTOTP()
		return nil
	})
}

// BumpGeneration ends every session of the user and returns the new generation.
func BumpGeneration(s Store, user string) (uint64, error) {
	var gen uint64
	err := update(s, user, func(a *Account) error {
		a.EndSessions()
		gen = a.Generation
		return nil
	})
	return gen, err
}

// RevokeSession applies Account.RevokeSession to the user's account.
func RevokeSession(s Store, user string, id uint64, until, now time.Time) error {
	return update(s, user, func(a *Account) error {
		a.RevokeSession(id, until, now)
		return nil
	})
}

// TakeAttempt takes one slot in each counter of limits (see TakeSlots). A
// counter that is locked at now, or whose slots for the current window are
// all taken, refuses; then no slot is taken anywhere and the returned Lock
// says which counter refused and for how long. window is both the counting
// window (from the first failure) and the lock length.
func TakeAttempt(s Store, now time.Time, window time.Duration, limits []Limit) (Attempt, *Lock, error) {
	// Checked before the update, so that a bad call never fails a batch.
	if err := CheckLimits(window, limits); err != nil {
		return Attempt{}, nil, err
	}
	now = now.Round(0)
	var (
		a    Attempt
		lock *Lock
	)
	err := s.UpdateCounters(limitKeys(limits), func(cs map[string]*Counter) error {
		var save []Counter
		var err error
		a, lock, save, err = TakeSlots(now, window, limits, loadFrom(cs))
		saveInto(cs, save)
		return err
	})
	if err != nil {
		return Attempt{}, nil, fmt.Errorf("take attempt: %w", err)
	}
	return a, lock, nil
}

// ReleaseAttempt gives the attempt's slots back (see ReleaseSlots).
func ReleaseAttempt(s Store, a Attempt) error {
	if err := CheckAttempt(a); err != nil {
		return err
	}
	err := s.UpdateCounters(limitKeys(a.Limits), func(cs map[string]*Counter) error {
		save, err := ReleaseSlots(a, loadFrom(cs))
		saveInto(cs, save)
		return err
	})
	if err != nil {
		return fmt.Errorf("release attempt: %w", err)
	}
	return nil
}

// FailAttempt turns the attempt's slots into failures (see FailSlots). Each
// counter that thereby reaches its Max is locked for window from now; those
// are returned.
func FailAttempt(s Store, a Attempt, now time.Time, window time.Duration) ([]Lock, error) {
	if err := CheckAttempt(a); err != nil {
		return nil, err
	}
	if err := CheckLimits(window, a.Limits); err != nil {
		return nil, err
	}
	now = now.Round(0)
	var locks []Lock
	err := s.UpdateCounters(limitKeys(a.Limits), func(cs map[string]*Counter) error {
		var save []Counter
		var err error
		locks, save, err = FailSlots(a, now, window, loadFrom(cs))
		saveInto(cs, save)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record failed attempt: %w", err)
	}
	return locks, nil
}

// ResetFailures forgets the failures counted under key (Counter.WithoutFailures).
func ResetFailures(s Store, key string) error {
	err := s.UpdateCounters([]string{key}, func(cs map[string]*Counter) error {
		c, _ := loadFrom(cs)(key)
		saveInto(cs, []Counter{c.WithoutFailures()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("reset failures of %q: %w", key, err)
	}
	return nil
}

func limitKeys(limits []Limit) []string {
	keys := make([]string, 0, len(limits))
	for _, l := range limits {
		keys = append(keys, l.Key)
	}
	return keys
}

// loadFrom is how the counter transitions read the counters an update
// loaded. A key the update did not load is one without a counter.
func loadFrom(cs map[string]*Counter) func(key string) (Counter, error) {
	return func(key string) (Counter, error) {
		if c := cs[key]; c != nil {
			return *c, nil
		}
		return Counter{Key: key}, nil
	}
}

// saveInto puts what a transition changed back into the update's counters.
func saveInto(cs map[string]*Counter, save []Counter) {
	for _, c := range save {
		if p := cs[c.Key]; p != nil {
			*p = c
		} else {
			cs[c.Key] = &c
		}
	}
}

// Unlock forgets the failure counter under key: its failures, its lock and
// the slots attempts hold (they are not counted when those attempts end).
func Unlock(s Store, key string) error {
	err := s.UpdateCounters([]string{key}, func(cs map[string]*Counter) error {
		saveInto(cs, []Counter{{Key: key}})
		return nil
	})
	if err != nil {
		return fmt.Errorf("unlock %q: %w", key, err)
	}
	return nil
}

// PruneCounters deletes the counters whose window and lock are both over at
// now (Counter.Over), and returns how many it deleted.
func PruneCounters(s Store, now time.Time, window time.Duration) (int, error) {
	n, err := s.PruneCounters(func(c Counter) bool { return c.Over(now, window) })
	if err != nil {
		return 0, fmt.Errorf("prune counters: %w", err)
	}
	return n, nil
}
