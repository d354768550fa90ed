// Package memstore is an account.Store held in memory, for tests of the
// gateway and the account rules that need a real store but no file. Like
// the bbolt and PostgreSQL stores it only loads, locks and saves (all pass
// internal/storetest); the rules are package account's. It keeps nothing
// across restarts and encrypts nothing.
package memstore

import (
	"bytes"
	"fmt"
	"sort"
	"sync"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Store is an in-memory account.Store. The zero value is not usable; call New.
type Store struct {
	mu       sync.Mutex
	accounts map[string]account.Account
	// states holds SessionStateOf every account as last committed, and of
	// removed ones, whose generation a new account of the name continues.
	states   map[string]account.SessionState
	counters map[string]account.Counter
	hashKey  []byte
	blockKey []byte
}

// New returns an empty Store.
func New() *Store {
	return &Store{
		accounts: make(map[string]account.Account),
		states:   make(map[string]account.SessionState),
		counters: make(map[string]account.Counter),
	}
}

// Interface guard.
var _ account.Store = (*Store)(nil)

// SetPassword creates user or replaces its password hash, as the operator
// command does, so gateway tests can have users managed in the store.
func (s *Store) SetPassword(user string, hash []byte) {
	err := s.UpdateAccount(user, func(a *account.Account) error {
		a.SetPassword(hash)
		return nil
	})
	if err != nil {
		panic(err) // UpdateAccount fails only when fn does
	}
}

// loadLocked returns a copy of user's account; s.mu must be held.
func (s *Store) loadLocked(user string) account.Account {
	a, ok := s.accounts[user]
	if !ok {
		return account.Account{Name: user, Generation: s.states[user].Generation}
	}
	return a.Clone()
}

// Account implements account.Store.
func (s *Store) Account(user string) (account.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadLocked(user), nil
}

// SessionState implements account.Store.
func (s *Store) SessionState(user string) (account.SessionState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states[user], nil
}

// UpdateAccount implements account.Store.
func (s *Store) UpdateAccount(user string, fn func(*account.Account) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := account.Apply(user, s.loadLocked(user), fn)
	if err != nil {
		return err
	}
	if a.Removed {
		delete(s.accounts, user)
	} else {
		a.Stored = true
		s.accounts[user] = a.Clone()
	}
	s.states[user] = account.SessionStateOf(a)
	return nil
}

// Accounts implements account.Store.
func (s *Store) Accounts() ([]account.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]account.Account, 0, len(s.accounts))
	for _, a := range s.accounts {
		list = append(list, a.Withheld())
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list, nil
}

// UpdateCounters implements account.Store.
func (s *Store) UpdateCounters(keys []string, fn func(map[string]*account.Counter) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make(map[string]*account.Counter, len(keys))
	for _, k := range keys {
		c, ok := s.counters[k]
		if !ok {
			c = account.Counter{Key: k}
		}
		cs[k] = &c
	}
	if err := fn(cs); err != nil {
		return err
	}
	for _, k := range keys {
		c := *cs[k]
		c.Key = k
		if c.Empty() {
			delete(s.counters, k)
		} else {
			s.counters[k] = c
		}
	}
	return nil
}

// Counter implements account.Store.
func (s *Store) Counter(key string) (account.Counter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.counters[key]; ok {
		return c, nil
	}
	return account.Counter{Key: key}, nil
}

// Counters implements account.Store.
func (s *Store) Counters() ([]account.Counter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]account.Counter, 0, len(s.counters))
	for _, c := range s.counters {
		list = append(list, c)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Key < list[j].Key })
	return list, nil
}

// PruneCounters implements account.Store.
func (s *Store) PruneCounters(drop func(account.Counter) bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.counters {
		if drop(c) {
			delete(s.counters, k)
			n++
		}
	}
	return n, nil
}

// SessionKeys implements account.Store.
func (s *Store) SessionKeys(generate func() (hashKey, blockKey []byte, err error)) ([]byte, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hashKey == nil {
		h, b, err := generate()
		if err != nil {
			return nil, nil, fmt.Errorf("generate session keys: %w", err)
		}
		// Never store nil: nil marks "not generated yet".
		s.hashKey, s.blockKey = append([]byte{}, h...), append([]byte{}, b...)
	}
	return bytes.Clone(s.hashKey), bytes.Clone(s.blockKey), nil
}
