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
	found := false
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get([]byte(user))
		if v == nil {
			return nil
		}
		found = true
		var err error
		st, err = decodeSessionState(v)
		return err
	})
	if err != nil {
		return account.SessionState{}, fmt.Errorf("read session state of %q: %w", user, err)
	}
	// Names the database has no record of are not remembered: requests
	// with app passwords bring names of the client's choosing, and
	// memory must not grow with them.
	if found {
		db.states.m.Store(user, st)
	}
	return st, nil
}

// The sessions bucket holds, per user, what SessionState answers: the
// generation (8 bytes, big endian), a flags byte, then the ids of revoked
// sessions, 8 bytes each. A user with app passwords has flagAppPasswords
// set, and the revoked ids are preceded by their length (4 bytes) and
// followed by the packed app passwords (SessionState.AppPasswords).
// putSessionState writes it in the same transaction as the account, so
// the hot path reads a few bytes and decrypts nothing.
const (
	sessionValueSize   = 9
	flagMustRegenerate = 1 << 0
	flagTOTPEnabled    = 1 << 1
	flagPasswordSet    = 1 << 2
	flagAppPasswords   = 1 << 3
)

func encodeSessionState(st account.SessionState) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, sessionValueSize+4+len(st.RevokedSessions)+len(st.AppPasswords)), st.Generation)
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
	if st.AppPasswords == "" {
		return append(append(v, flags), st.RevokedSessions...)
	}
	v = append(v, flags|flagAppPasswords)
	v = binary.BigEndian.AppendUint32(v, uint32(len(st.RevokedSessions)))
	v = append(v, st.RevokedSessions...)
	return append(v, st.AppPasswords...)
}

func decodeSessionState(v []byte) (account.SessionState, error) {
	if len(v) < sessionValueSize {
		return account.SessionState{}, fmt.Errorf("session state is %d bytes, want at least %d", len(v), sessionValueSize)
	}
	st := account.SessionState{
		Generation:     binary.BigEndian.Uint64(v),
		MustRegenerate: v[8]&flagMustRegenerate != 0,
		TOTPEnabled:    v[8]&flagTOTPEnabled != 0,
		PasswordSet:    v[8]&flagPasswordSet != 0,
	}
	rest := v[sessionValueSize:]
	if v[8]&flagAppPasswords != 0 {
		if len(rest) < 4 || uint64(binary.BigEndian.Uint32(rest)) > uint64(len(rest)-4) {
			return account.SessionState{}, fmt.Errorf("session state of %d bytes is cut short", len(v))
		}
		n := binary.BigEndian.Uint32(rest)
		st.AppPasswords = string(rest[4+n:])
		rest = rest[4 : 4+n]
	}
	if len(rest)%8 != 0 {
		return account.SessionState{}, fmt.Errorf("session state holds %d bytes of revoked sessions, want 8 per session", len(rest))
	}
	st.RevokedSessions = string(rest)
	return st, nil
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
