package memstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// busyRetry is what a refusal says when every slot of a counter is held by
// an attempt still being evaluated: those end within seconds, so asking the
// client to wait for the whole window would overstate it.
const busyRetry = time.Second

var errBadAttempt = errors.New("attempt has a different number of limits and window starts")

// counter is one failure counter. These rules are the same as in package
// storage; internal/storetest holds both to them.
type counter struct {
	windowStart time.Time // zero: no window yet
	failures    int
	inFlight    int       // slots taken and not yet released or failed
	lockedUntil time.Time // zero: not locked
}

// at returns c as it stands at now: once its window or its lock is over,
// a counter starts afresh.
func (c counter) at(now time.Time, window time.Duration) counter {
	if !c.lockedUntil.IsZero() {
		if now.Before(c.lockedUntil) {
			return c
		}
		return counter{}
	}
	if c.windowStart.IsZero() || !now.Before(c.windowStart.Add(window)) {
		return counter{}
	}
	return c
}

// refusal is how long c, as it stands at now, refuses another attempt; 0
// if it has a free slot.
func (c counter) refusal(now time.Time, window time.Duration, max int) time.Duration {
	end := c.windowStart.Add(window)
	switch {
	case now.Before(c.lockedUntil):
		return c.lockedUntil.Sub(now)
	case c.failures >= max: // Max was lowered since the failures were counted
		return end.Sub(now)
	case c.failures+c.inFlight >= max:
		return min(busyRetry, end.Sub(now))
	}
	return 0
}

func (c counter) empty() bool {
	return c.failures == 0 && c.inFlight == 0 && c.lockedUntil.IsZero()
}

// TakeAttempt implements gateway.Store.
func (s *Store) TakeAttempt(now time.Time, window time.Duration, limits []gateway.Limit) (gateway.Attempt, *gateway.Lock, error) {
	if err := checkLimits(window, limits); err != nil {
		return gateway.Attempt{}, nil, err
	}
	now = now.Round(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	taken := make(map[string]counter, len(limits))
	attempt := gateway.Attempt{
		Limits:       append([]gateway.Limit(nil), limits...),
		WindowStarts: make([]time.Time, len(limits)),
	}
	var lock *gateway.Lock
	for i, l := range limits {
		c, ok := taken[l.Key]
		if !ok {
			c = s.counters[l.Key].at(now, window)
		}
		if wait := c.refusal(now, window, l.Max); wait > 0 {
			if lock == nil || wait > lock.RetryAfter {
				lock = &gateway.Lock{Key: l.Key, RetryAfter: wait}
			}
			continue
		}
		if c.failures == 0 && c.inFlight == 0 {
			// The window counts from the first attempt still counted.
			c.windowStart = now
		}
		c.inFlight++
		taken[l.Key] = c
		attempt.WindowStarts[i] = c.windowStart
	}
	if lock != nil {
		return gateway.Attempt{}, lock, nil
	}
	for k, c := range taken {
		s.counters[k] = c
	}
	return attempt, nil, nil
}

// ReleaseAttempt implements gateway.Store.
func (s *Store) ReleaseAttempt(a gateway.Attempt) error {
	if len(a.Limits) != len(a.WindowStarts) {
		return errBadAttempt
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, l := range a.Limits {
		c, ok := s.counters[l.Key]
		if !ok || c.inFlight == 0 || !c.windowStart.Equal(a.WindowStarts[i]) {
			continue // its window is over: the slot went with it
		}
		c.inFlight--
		if c.empty() {
			delete(s.counters, l.Key)
		} else {
			s.counters[l.Key] = c
		}
	}
	return nil
}

// FailAttempt implements gateway.Store.
func (s *Store) FailAttempt(a gateway.Attempt, now time.Time, window time.Duration) ([]gateway.Lock, error) {
	if len(a.Limits) != len(a.WindowStarts) {
		return nil, errBadAttempt
	}
	if err := checkLimits(window, a.Limits); err != nil {
		return nil, err
	}
	now = now.Round(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	var locks []gateway.Lock
	for i, l := range a.Limits {
		c := s.counters[l.Key].at(now, window)
		if c.inFlight > 0 && c.windowStart.Equal(a.WindowStarts[i]) {
			c.inFlight--
		}
		if c.windowStart.IsZero() {
			c.windowStart = now
		}
		c.failures++
		if c.failures >= l.Max && !now.Before(c.lockedUntil) {
			c.lockedUntil = now.Add(window)
			locks = append(locks, gateway.Lock{Key: l.Key, RetryAfter: window})
		}
		s.counters[l.Key] = c
	}
	return locks, nil
}

// ResetFailures implements gateway.Store.
func (s *Store) ResetFailures(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.counters[key]
	if !ok {
		return nil
	}
	// Slots still in flight stay taken, so their release still matches.
	c.failures = 0
	c.lockedUntil = time.Time{}
	if c.empty() {
		delete(s.counters, key)
	} else {
		s.counters[key] = c
	}
	return nil
}

func checkLimits(window time.Duration, limits []gateway.Limit) error {
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
