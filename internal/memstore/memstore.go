// Package memstore is a gateway.Store held in memory, for tests of the
// gateway that need a real store but no file. It follows the same rules as
// the bbolt store in package storage (both pass internal/storetest) and
// keeps nothing across restarts. It does not encrypt anything.
package memstore

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"sync"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// Store is an in-memory gateway.Store. The zero value is not usable; call New.
type Store struct {
	mu       sync.Mutex
	accounts map[string]*account
	counters map[string]gateway.Counter
	hashKey  []byte
	blockKey []byte
}

// New returns an empty Store.
func New() *Store {
	return &Store{
		accounts: make(map[string]*account),
		counters: make(map[string]gateway.Counter),
	}
}

// Interface guard.
var _ gateway.Store = (*Store)(nil)

type account struct {
	passwordHash   []byte
	totpSecret     string
	lastStep       int64
	backupCodes    [][]byte
	mustRegenerate bool
	generation     uint64
	pending        *gateway.Enrollment
	revoked        []gateway.Revocation
}

// SetPassword creates user or replaces its password hash, like the
// operator function of the bbolt store, so gateway tests can have users
// managed in the database.
func (s *Store) SetPassword(user string, hash []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accountLocked(user).passwordHash = bytes.Clone(hash)
}

// accountLocked returns user's record, creating it; s.mu must be held.
func (s *Store) accountLocked(user string) *account {
	a, ok := s.accounts[user]
	if !ok {
		a = &account{}
		s.accounts[user] = a
	}
	return a
}

// Account implements gateway.Store.
func (s *Store) Account(user string) (gateway.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[user]
	if !ok {
		return gateway.Account{Name: user}, nil
	}
	return gateway.Account{
		Name:           user,
		PasswordHash:   bytes.Clone(a.passwordHash),
		TOTPSecret:     a.totpSecret,
		LastStep:       a.lastStep,
		BackupCodes:    cloneCodes(a.backupCodes),
		MustRegenerate: a.mustRegenerate,
		Generation:     a.generation,
		Stored:         true,
	}, nil
}

// SessionState implements gateway.Store.
func (s *Store) SessionState(user string) (gateway.SessionState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[user]
	if !ok {
		return gateway.SessionState{}, nil
	}
	return gateway.SessionState{
		Generation:      a.generation,
		MustRegenerate:  a.mustRegenerate,
		TOTPEnabled:     a.totpSecret != "",
		PasswordSet:     a.passwordHash != nil,
		RevokedSessions: gateway.RevokedString(a.revoked),
	}, nil
}

// PendingEnrollment implements gateway.Store.
func (s *Store) PendingEnrollment(user string, now time.Time, create func() (gateway.Enrollment, error)) (gateway.Enrollment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[user]; ok && a.pending != nil && now.Before(a.pending.Expires) {
		return *a.pending, nil
	}
	e, err := create()
	if err != nil {
		return gateway.Enrollment{}, fmt.Errorf("create enrollment for %q: %w", user, err)
	}
	s.accountLocked(user).pending = &e
	return e, nil
}

// ConfirmEnrollment implements gateway.Store.
func (s *Store) ConfirmEnrollment(user, secret string, step int64, backupHashes [][]byte, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[user]
	if !ok || a.pending == nil || !now.Before(a.pending.Expires) || secret == "" ||
		subtle.ConstantTimeCompare([]byte(a.pending.Secret), []byte(secret)) != 1 {
		return gateway.ErrNoEnrollment
	}
	a.totpSecret = secret
	a.lastStep = step
	a.backupCodes = cloneCodes(backupHashes)
	a.mustRegenerate = false
	a.pending = nil
	return nil
}

// AcceptStep implements gateway.Store.
func (s *Store) AcceptStep(user string, step int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[user]
	last := int64(0)
	if a != nil {
		last = a.lastStep
	}
	if step <= last {
		return gateway.ErrStepReused
	}
	s.accountLocked(user).lastStep = step
	return nil
}

// UseBackupCode implements gateway.Store.
func (s *Store) UseBackupCode(user string, hash []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[user]
	if !ok || len(hash) == 0 {
		return gateway.ErrCodeUsed
	}
	left, ok := gateway.SpendBackupCode(a.backupCodes, hash)
	if !ok {
		return gateway.ErrCodeUsed
	}
	a.backupCodes, a.mustRegenerate = left, true
	return nil
}

// ReplaceBackupCodes implements gateway.Store.
func (s *Store) ReplaceBackupCodes(user string, backupHashes [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(user)
	a.backupCodes = cloneCodes(backupHashes)
	a.mustRegenerate = false
	return nil
}

// DisableTOTP implements gateway.Store.
func (s *Store) DisableTOTP(user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[user]
	if !ok {
		return nil
	}
	a.totpSecret = ""
	a.backupCodes = nil
	a.pending = nil
	a.mustRegenerate = false
	return nil
}

// BumpGeneration implements gateway.Store.
func (s *Store) BumpGeneration(user string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(user)
	a.generation++
	return a.generation, nil
}

// RevokeSession implements gateway.Store.
func (s *Store) RevokeSession(user string, id uint64, until, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(user)
	revoked, full := gateway.AddRevocation(a.revoked, id, until, now)
	if full {
		a.generation++
	}
	a.revoked = revoked
	return nil
}

// SessionKeys implements gateway.Store.
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

func cloneCodes(codes [][]byte) [][]byte {
	if len(codes) == 0 {
		return nil
	}
	out := make([][]byte, len(codes))
	for i, c := range codes {
		out[i] = bytes.Clone(c)
	}
	return out
}
