package memstore

import (
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// The rules of the lockout are gateway's (gateway.TakeSlots and its
// siblings); this file only loads and saves the counters they work on,
// under s.mu.

// counterLocked returns the counter under key, or one with only the Key;
// s.mu must be held. It never fails: the error is what gateway's
// transitions ask of a load.
func (s *Store) counterLocked(key string) (gateway.Counter, error) {
	if c, ok := s.counters[key]; ok {
		return c, nil
	}
	return gateway.Counter{Key: key}, nil
}

// saveCountersLocked keeps cs, dropping the empty ones; s.mu must be held.
func (s *Store) saveCountersLocked(cs []gateway.Counter) {
	for _, c := range cs {
		if c.Empty() {
			delete(s.counters, c.Key)
		} else {
			s.counters[c.Key] = c
		}
	}
}

// TakeAttempt implements gateway.Store.
func (s *Store) TakeAttempt(now time.Time, window time.Duration, limits []gateway.Limit) (gateway.Attempt, *gateway.Lock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, lock, save, err := gateway.TakeSlots(now.Round(0), window, limits, s.counterLocked)
	if err != nil {
		return gateway.Attempt{}, nil, err
	}
	s.saveCountersLocked(save)
	return a, lock, nil
}

// ReleaseAttempt implements gateway.Store.
func (s *Store) ReleaseAttempt(a gateway.Attempt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	save, err := gateway.ReleaseSlots(a, s.counterLocked)
	if err != nil {
		return err
	}
	s.saveCountersLocked(save)
	return nil
}

// FailAttempt implements gateway.Store.
func (s *Store) FailAttempt(a gateway.Attempt, now time.Time, window time.Duration) ([]gateway.Lock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	locks, save, err := gateway.FailSlots(a, now.Round(0), window, s.counterLocked)
	if err != nil {
		return nil, err
	}
	s.saveCountersLocked(save)
	return locks, nil
}

// ResetFailures implements gateway.Store.
func (s *Store) ResetFailures(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _ := s.counterLocked(key)
	s.saveCountersLocked([]gateway.Counter{c.WithoutFailures()})
	return nil
}
