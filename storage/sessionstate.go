package storage

import (
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/totp-auth/totp_auth/gateway"
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
	m  sync.Map // user → gateway.SessionState
}

// putSessionState writes user's state in tx and into the cache once tx commits.
func (db *DB) putSessionState(tx *bolt.Tx, user string, st gateway.SessionState) error {
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

// SessionState implements gateway.Store. It is on the path of every request
// with a session: a map lookup once the user's state was read, and never a
// decryption.
func (db *DB) SessionState(user string) (gateway.SessionState, error) {
	if st, ok := db.states.m.Load(user); ok {
		return st.(gateway.SessionState), nil
	}
	db.states.mu.Lock()
	defer db.states.mu.Unlock()
	if st, ok := db.states.m.Load(user); ok {
		return st.(gateway.SessionState), nil
	}
	var st gateway.SessionState
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
		return gateway.SessionState{}, fmt.Errorf("read session state of %q: %w", user, err)
	}
	db.states.m.Store(user, st)
	return st, nil
}
