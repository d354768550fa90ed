package account

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file holds the rules of the lockout's failure counters (SPEC §4
// rules 5 and 13), written once for every Store: the transitions below are
// pure functions over the counters an attempt names. TakeAttempt and its
// siblings (below) run them inside one Store.UpdateCounters.

// busyRetry is what a refusal says when every slot of a counter is held by
// an attempt still being evaluated: those end within seconds, so asking the
// client to wait for the whole window would overstate it.
const busyRetry = time.Second

var errBadAttempt = errors.New("attempt has a different number of limits and window starts")

// Limit names one failure counter and how many failures it allows per window.
type Limit struct {
	Key string
	Max int
}

// Attempt is a slot taken in one or more failure counters before a password
// or code is evaluated. It ends with exactly one of ReleaseAttempt
// (correct, or refused unevaluated) or FailAttempt.
type Attempt struct {
	Limits []Limit
	// WindowStarts records, per limit, the window the slot was taken in, so
	// a late release never frees a slot of a newer window.
	WindowStarts []time.Time
	// Failures records, per limit, how many failures its counter held when
	// the slot was taken, so a failed attempt can say how many are left.
	Failures []int
}

// Lock describes a counter that refuses attempts.
type Lock struct {
	Key        string
	RetryAfter time.Duration
}

// Counter is one failure counter of the lockout, as a Store keeps it under
// its key. The zero value with a Key is a counter that never counted.
type Counter struct {
	// Key is the counter's name, as the gateway chose it (see Limit).
	Key string
	// WindowStart is when the current counting window began: at the first
	// attempt still counted. Zero if there is none.
	WindowStart time.Time
	// Failures is how many failures the window has counted.
	Failures int
	// InFlight is how many slots attempts hold while being evaluated.
	InFlight int
	// LockedUntil is when the lock ends; zero if the counter never locked.
	LockedUntil time.Time
}

// Locked reports whether the counter refuses every attempt at now.
func (c Counter) Locked(now time.Time) bool { return now.Before(c.LockedUntil) }

// At returns c as it stands at now: once its window or its lock is over,
// a counter starts afresh, keeping only its Key.
func (c Counter) At(now time.Time, window time.Duration) Counter {
	fresh := Counter{Key: c.Key}
	if !c.LockedUntil.IsZero() {
		if now.Before(c.LockedUntil) {
			return c
		}
		return fresh
	}
	if c.WindowStart.IsZero() || !now.Before(c.WindowStart.Add(window)) {
		return fresh
	}
	return c
}

// Refusal is how long c, as it stands at now (see At), refuses another
// attempt under a limit of max failures; 0 if it has a free slot.
func (c Counter) Refusal(now time.Time, window time.Duration, max int) time.Duration {
	end := c.WindowStart.Add(window)
	switch {
	case now.Before(c.LockedUntil):
		return c.LockedUntil.Sub(now)
	case c.Failures >= max: // Max was lowered since the failures were counted
		return end.Sub(now)
	case c.Failures+c.InFlight >= max:
		return min(busyRetry, end.Sub(now))
	}
	return 0
}

// Empty reports whether c holds nothing worth keeping: no failures, no
// slots in flight and no lock, ended or not. A Store deletes an empty
// counter instead of saving it.
func (c Counter) Empty() bool {
	return c.Failures == 0 && c.InFlight == 0 && c.LockedUntil.IsZero()
}

// WithoutFailures returns c with its failures and its lock forgotten, as
// ResetFailures does. Slots still in flight stay taken, so their
// release still matches.
func (c Counter) WithoutFailures() Counter {
	c.Failures = 0
	c.LockedUntil = time.Time{}
	return c
}

// checkLimits returns an error if window or any of limits cannot count
// failures: a window that is not positive, a Max below 1 or an empty Key.
func checkLimits(window time.Duration, limits []Limit) error {
	if window <= 0 {
		return fmt.Errorf("lockout window %s is not positive", window)
	}
	for _, l := range limits {
		if l.Max <= 0 {
			return fmt.Errorf("limit %q allows %d failures, want at least 1", l.Key, l.Max)
		}
		if l.Key == "" {
			return errors.New("limit without a key")
		}
	}
	return nil
}

// checkAttempt returns an error if a does not have one window start per
// limit, so it cannot be an Attempt a Store handed out.
func checkAttempt(a Attempt) error {
	if len(a.Limits) != len(a.WindowStarts) {
		return errBadAttempt
	}
	return nil
}

// takeSlots is TakeAttempt over the counters load returns. load is
// called once per key and must return a Counter with only the Key for a
// key without one. On success save lists each counter that took a slot; on
// a refusal it is empty, since nothing may be written anywhere.
func takeSlots(now time.Time, window time.Duration, limits []Limit, load func(key string) (Counter, error)) (a Attempt, lock *Lock, save []Counter, err error) {
	if err := checkLimits(window, limits); err != nil {
		return Attempt{}, nil, nil, err
	}
	cs := counterSet{load: load}
	starts := make([]time.Time, len(limits))
	failures := make([]int, len(limits))
	for i, l := range limits {
		c, err := cs.get(l.Key)
		if err != nil {
			return Attempt{}, nil, nil, err
		}
		c = c.At(now, window)
		if wait := c.Refusal(now, window, l.Max); wait > 0 {
			if lock == nil || wait > lock.RetryAfter {
				lock = &Lock{Key: l.Key, RetryAfter: wait}
			}
			continue
		}
		if c.Failures == 0 && c.InFlight == 0 {
			// The window counts from the first attempt still counted.
			c.WindowStart = now
		}
		c.InFlight++
		cs.set(c)
		starts[i] = c.WindowStart
		failures[i] = c.Failures
	}
	if lock != nil {
		return Attempt{}, lock, nil, nil
	}
	return Attempt{Limits: append([]Limit(nil), limits...), WindowStarts: starts, Failures: failures}, nil, cs.changed(), nil
}

// releaseSlots is ReleaseAttempt over the counters load returns (see
// takeSlots). save lists each counter that gave a slot back. A slot taken
// in a window that is over went with that window: releasing it frees
// nothing in a newer one.
func releaseSlots(a Attempt, load func(key string) (Counter, error)) (save []Counter, err error) {
	if err := checkAttempt(a); err != nil {
		return nil, err
	}
	cs := counterSet{load: load}
	for i, l := range a.Limits {
		c, err := cs.get(l.Key)
		if err != nil {
			return nil, err
		}
		if c.InFlight == 0 || !c.WindowStart.Equal(a.WindowStarts[i]) {
			continue // its window is over: the slot went with it
		}
		c.InFlight--
		cs.set(c)
	}
	return cs.changed(), nil
}

// failSlots is FailAttempt over the counters load returns (see
// takeSlots). It counts one failure in each counter of a, freeing the slot
// a holds there if its window is still the current one; each counter that
// thereby reaches its Max is locked for window from now and listed in
// locks. save lists every counter of a.
func failSlots(a Attempt, now time.Time, window time.Duration, load func(key string) (Counter, error)) (locks []Lock, save []Counter, err error) {
	if err := checkAttempt(a); err != nil {
		return nil, nil, err
	}
	if err := checkLimits(window, a.Limits); err != nil {
		return nil, nil, err
	}
	cs := counterSet{load: load}
	for i, l := range a.Limits {
		c, err := cs.get(l.Key)
		if err != nil {
			return nil, nil, err
		}
		c = c.At(now, window)
		if c.InFlight > 0 && c.WindowStart.Equal(a.WindowStarts[i]) {
			c.InFlight--
		}
		if c.WindowStart.IsZero() {
			c.WindowStart = now
		}
		c.Failures++
		if c.Failures >= l.Max && !c.Locked(now) {
			c.LockedUntil = now.Add(window)
			locks = append(locks, Lock{Key: l.Key, RetryAfter: window})
		}
		cs.set(c)
	}
	return locks, cs.changed(), nil
}

// counterSet is what one transition works on: each counter loaded once,
// then read back as the transition left it, so a key named twice in one
// attempt counts twice, as it would with the store read after each write.
type counterSet struct {
	load    func(key string) (Counter, error)
	byKey   map[string]Counter
	changes []string // keys set, in the order first set
}

func (s *counterSet) get(key string) (Counter, error) {
	if c, ok := s.byKey[key]; ok {
		return c, nil
	}
	c, err := s.load(key)
	if err != nil {
		return Counter{}, err
	}
	if s.byKey == nil {
		s.byKey = make(map[string]Counter)
	}
	s.byKey[key] = c
	return c, nil
}

// set records c as changed; c must have been got first.
func (s *counterSet) set(c Counter) {
	if !slices.Contains(s.changes, c.Key) {
		s.changes = append(s.changes, c.Key)
	}
	s.byKey[c.Key] = c
}

// changed returns the counters set, each once as last set; nil if none.
func (s *counterSet) changed() []Counter {
	var out []Counter
	for _, k := range s.changes {
		out = append(out, s.byKey[k])
	}
	return out
}

// Over reports whether c's window and lock are both over at now, so that
// forgetting it changes nothing: what pruning deletes.
func (c Counter) Over(now time.Time, window time.Duration) bool {
	return !c.Locked(now) && !now.Before(c.WindowStart.Add(window))
}

// CounterKind is what a failure counter counts against. A counter's key is
// its kind followed by the user name or the client address.
type CounterKind string

// The kinds of failure counters (SPEC §4 rules 5 and 13).
const (
	UserCounter CounterKind = "user:"
	IPCounter   CounterKind = "ip:"
)

// Key is the key of the counter of this kind for name.
func (k CounterKind) Key(name string) string { return string(k) + name }

// Name returns the user name or client address in key, if key is a
// counter of this kind.
func (k CounterKind) Name(key string) (string, bool) { return strings.CutPrefix(key, string(k)) }

// TakeAttempt takes one slot in each counter of limits (see takeSlots). A
// counter that is locked at now, or whose slots for the current window are
// all taken, refuses; then no slot is taken anywhere and the returned Lock
// says which counter refused and for how long. window is both the counting
// window (from the first failure) and the lock length.
func TakeAttempt(s Store, now time.Time, window time.Duration, limits []Limit) (Attempt, *Lock, error) {
	// Checked before the update, so that a bad call never fails a batch.
	if err := checkLimits(window, limits); err != nil {
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
		a, lock, save, err = takeSlots(now, window, limits, loadFrom(cs))
		saveInto(cs, save)
		return err
	})
	if err != nil {
		return Attempt{}, nil, fmt.Errorf("take attempt: %w", err)
	}
	return a, lock, nil
}

// ReleaseAttempt gives the attempt's slots back (see releaseSlots).
func ReleaseAttempt(s Store, a Attempt) error {
	if err := checkAttempt(a); err != nil {
		return err
	}
	err := s.UpdateCounters(limitKeys(a.Limits), func(cs map[string]*Counter) error {
		save, err := releaseSlots(a, loadFrom(cs))
		saveInto(cs, save)
		return err
	})
	if err != nil {
		return fmt.Errorf("release attempt: %w", err)
	}
	return nil
}

// FailAttempt turns the attempt's slots into failures (see failSlots). Each
// counter that thereby reaches its Max is locked for window from now; those
// are returned.
func FailAttempt(s Store, a Attempt, now time.Time, window time.Duration) ([]Lock, error) {
	if err := checkAttempt(a); err != nil {
		return nil, err
	}
	if err := checkLimits(window, a.Limits); err != nil {
		return nil, err
	}
	now = now.Round(0)
	var locks []Lock
	err := s.UpdateCounters(limitKeys(a.Limits), func(cs map[string]*Counter) error {
		var save []Counter
		var err error
		locks, save, err = failSlots(a, now, window, loadFrom(cs))
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
