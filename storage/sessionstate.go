package storage

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/totp-auth/totp_auth/gateway/account"
	bolt "go.etcd.io/bbolt"
)

// sessionStates keeps every user's SessionState in memory once read, so
// the per-request check costs a map lookup instead of a bbolt transaction
// (which takes bbolt's meta lock, shared by every request).
//
// It stays exact because this process is the only writer (bbolt's file
// lock) and every write of the sessions bucket goes through putSessionState,
// which updates the cache when its transaction commits. Misses fill the
// cache under mu, which commit hooks also take, so a value read before a
// commit can never overwrite the value that commit wrote.
type sessionStates struct {
	mu sync.Mutex
	m  sync.Map // user → account.SessionState
}

// putSessionState writes user's state in tx and into the cache once tx commits.
func (db *DB) putSessionState(tx *bolt.Tx, user string, st account.SessionState) error {
	if err := tx.Bucket(bucketSessions).Put([]byte(user), encodeSessionState(st)); err != nil {
		return fmt.Errorf("write session state of %q: %w", user, err)
	}
	tx.OnCommit(func() {
		db.states.mu.Lock()
		db.states.m.Store(user, st)
		db.states.mu.Unlock()
	})
	return nil
}

// SessionState implements account.Store. It is on the path of every request
// with a session: a map lookup once the user's state was read, and never a
// decryption.
func (db *DB) SessionState(user string) (account.SessionState, error) {
	if st, ok := db.states.m.Load(user); ok {
		return st.(account.SessionState), nil
	}
	db.states.mu.Lock()
	defer db.states.mu.Unlock()
	if st, ok := db.states.m.Load(user); ok {
		return st.(account.SessionState), nil
	}
	var st account.SessionState
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get([]byte(user))
		if v == nil {
			return nil
		}
		var err error
		st, err = decodeSessionState(v)
		return err
	})
	if err != nil {
		return account.SessionState{}, fmt.Errorf("read session state of %q: %w", user, err)
	}
	db.states.m.Store(user, st)
	return st, nil
}

// The sessions bucket holds, per user, what SessionState answers: the
// generation (8 bytes, big endian), a flags byte, then the ids of revoked
// sessions, 8 bytes each.
// putSessionState writes it in the same transaction as the account, so
// the hot path reads 9 bytes and decrypts nothing.
const (
	sessionValueSize   = 9
	flagMustRegenerate = 1 << 0
	flagTOTPEnabled    = 1 << 1
	flagPasswordSet    = 1 << 2
)

func encodeSessionState(st account.SessionState) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, sessionValueSize+len(st.RevokedSessions)), st.Generation)
	var flags byte
	if st.MustRegenerate {
		flags |= flagMustRegenerate
	}
	if st.TOTPEnabled {
		flags |= flagTOTPEnabled
	}
	if st.PasswordSet {
		flags |= flagPasswordSet
	}
	return append(append(v, flags), st.RevokedSessions...)
}

func decodeSessionState(v []byte) (account.SessionState, error) {
	if len(v) < sessionValueSize || (len(v)-sessionValueSize)%8 != 0 {
		return account.SessionState{}, fmt.Errorf("session state is %d bytes, want %d and 8 per revoked session", len(v), sessionValueSize)
	}
	return account.SessionState{
		Generation:      binary.BigEndian.Uint64(v),
		MustRegenerate:  v[8]&flagMustRegenerate != 0,
		TOTPEnabled:     v[8]&flagTOTPEnabled != 0,
		PasswordSet:     v[8]&flagPasswordSet != 0,
		RevokedSessions: string(v[sessionValueSize:]),
	}, nil
}

// Removed returns, in name order, every user the file keeps a generation
// for but no account: a removed user, as Account{Name, Generation,
// Removed: true}. Copying these keeps sessions of removed users ended
// when the name is added again elsewhere (SPEC §4 rule 18).
func (db *DB) Removed() ([]account.Account, error) {
	var list []account.Account
	err := db.bolt.View(func(tx *bolt.Tx) error {
		list = nil
		accounts := tx.Bucket(bucketAccounts)
		return tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			if accounts.Get(k) != nil {
				return nil
			}
			st, err := decodeSessionState(v)
			if err != nil {
				return fmt.Errorf("session state of %q: %w", k, err)
			}
			list = append(list, account.Account{Name: string(k), Generation: st.Generation, Removed: true})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list removed users: %w", err)
	}
	return list, nil
}
