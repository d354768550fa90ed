package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/totp-auth/totp_auth/gateway"
)

// This file holds what operators do to the database, through the admin API
// or the `caddy totp-auth` commands: none of it is on a request's path.
// Functions taking a user name canonicalise it as the gateway does.

// AccountSummary is an account as `caddy totp-auth user list` shows it:
// no secret and no hash.
type AccountSummary struct {
	// Name is the canonical user name.
	Name string
	// HasPassword reports whether the database holds a password for the
	// user; users defined in the Caddyfile only have none here.
	HasPassword bool
	// TOTPEnabled reports whether a TOTP secret is confirmed.
	TOTPEnabled bool
	// EnrollmentPending reports whether a shown secret awaits confirmation
	// (it may have expired).
	EnrollmentPending bool
	// BackupCodesLeft is how many backup codes are unused.
	BackupCodesLeft int
	// MustRegenerate is set after a backup code was used.
	MustRegenerate bool
	// Generation is the session generation; raising it ended sessions.
	Generation uint64
}

func canonical(user string) (string, error) {
	name := gateway.CanonicalUser(user)
	if name == "" {
		return "", errors.New("user name is empty")
	}
	return name, nil
}

// SetPassword stores hash (bcrypt or argon2id, as `caddy hash-password`
// prints it) as user's password, creating a user managed in the database
// if there is none. It does not end the user's sessions: BumpGeneration
// does that.
func (db *DB) SetPassword(user string, hash []byte) error {
	name, err := canonical(user)
	if err != nil {
		return err
	}
	if len(hash) == 0 {
		return fmt.Errorf("set password of %q: empty password hash", name)
	}
	err = db.updateAccount(name, func(_ *bolt.Tx, rec *accountRecord, _ bool) error {
		rec.PasswordHash = bytes.Clone(hash)
		return nil
	})
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	return nil
}

// RemoveAccount deletes everything stored about user (gateway.ErrNotFound
// if nothing is) and ends the user's sessions: the session generation is
// kept one higher, so a user added again under the name does not inherit
// sessions. The user's failure counters are left to expire.
func (db *DB) RemoveAccount(user string) error {
	name, err := canonical(user)
	if err != nil {
		return err
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		rec, stored, err := loadAccount(tx, name)
		if err != nil {
			return err
		}
		if !stored {
			return gateway.ErrNotFound
		}
		if err := tx.Bucket(bucketAccounts).Delete([]byte(name)); err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		return db.putSessionState(tx, name, gateway.SessionState{Generation: rec.Generation + 1})
	})
	if err != nil {
		return wrapUnlessSentinel(err, "remove account %q", name)
	}
	return nil
}

// Accounts lists every stored account in name order.
func (db *DB) Accounts() ([]AccountSummary, error) {
	var list []AccountSummary
	err := db.bolt.View(func(tx *bolt.Tx) error {
		list = nil
		return tx.Bucket(bucketAccounts).ForEach(func(k, _ []byte) error {
			name := string(k) // string() copies out of bbolt's memory
			rec, _, err := loadAccount(tx, name)
			if err != nil {
				return err
			}
			list = append(list, AccountSummary{
				Name:              name,
				HasPassword:       rec.PasswordHash != nil,
				TOTPEnabled:       rec.TOTPSecret != nil,
				EnrollmentPending: rec.Pending != nil,
				BackupCodesLeft:   len(rec.BackupCodes),
				MustRegenerate:    rec.MustRegenerate,
				Generation:        rec.Generation,
			})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return list, nil
}

// ResetTOTP removes user's TOTP secret, backup codes and pending enrollment
// and ends all of the user's sessions, in one transaction: the next sign-in
// has to enroll again (gateway.ErrNotFound if nothing is stored).
func (db *DB) ResetTOTP(user string) error {
	name, err := canonical(user)
	if err != nil {
		return err
	}
	err = db.updateAccount(name, func(_ *bolt.Tx, rec *accountRecord, stored bool) error {
		if !stored {
			return gateway.ErrNotFound
		}
		disable(rec)
		rec.Generation++
		return nil
	})
	if err != nil {
		return wrapUnlessSentinel(err, "reset totp of %q", name)
	}
	return nil
}

// Counter returns the failure counter under key as it is stored; a key
// without one yields a Counter with only the Key.
func (db *DB) Counter(key string) (gateway.Counter, error) {
	var c gateway.Counter
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		c, err = getCounter(tx.Bucket(bucketCounters), key)
		return err
	})
	if err != nil {
		return gateway.Counter{}, fmt.Errorf("read counter %q: %w", key, err)
	}
	return c, nil
}

// LockState returns the lock on key at now, or nil if key is not locked.
func (db *DB) LockState(key string, now time.Time) (*gateway.Lock, error) {
	c, err := db.Counter(key)
	if err != nil || !c.Locked(now) {
		return nil, err
	}
	return &gateway.Lock{Key: key, RetryAfter: c.LockedUntil.Sub(now)}, nil
}

// Locks returns every counter that refuses attempts at now, for the
// "active locks" metric and the admin API.
func (db *DB) Locks(now time.Time) ([]gateway.Lock, error) {
	var locks []gateway.Lock
	err := db.bolt.View(func(tx *bolt.Tx) error {
		locks = nil
		return tx.Bucket(bucketCounters).ForEach(func(k, v []byte) error {
			c, err := decodeCounter(string(k), v)
			if err != nil {
				return err
			}
			if c.Locked(now) {
				locks = append(locks, gateway.Lock{Key: c.Key, RetryAfter: c.LockedUntil.Sub(now)})
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	return locks, nil
}

// Unlock forgets the failure counter under key: its failures, its lock and
// the slots attempts hold (they are not counted when those attempts end).
func (db *DB) Unlock(key string) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCounters).Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("unlock %q: %w", key, err)
	}
	return nil
}

// PruneCounters deletes the counters whose window and lock are both over
// at now, and returns how many it deleted. window is the lockout window the
// counters were taken with.
func (db *DB) PruneCounters(now time.Time, window time.Duration) (int, error) {
	var n int
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(bucketCounters)
		var over [][]byte
		// Collect first: deleting while iterating a bucket is not allowed.
		err := b.ForEach(func(k, v []byte) error {
			c, err := decodeCounter(string(k), v)
			if err != nil {
				return err
			}
			if !c.Locked(now) && !now.Before(c.WindowStart.Add(window)) {
				over = append(over, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range over {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("delete counter %q: %w", k, err)
			}
		}
		n = len(over)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune counters: %w", err)
	}
	return n, nil
}

// RotateKey re-encrypts every secret under key in one transaction: after
// it returns, key alone opens the database and the old key no longer does.
// The caller must make key the configured encryption_key before the next
// Open (and may list the old key after it until then, which is harmless).
func (db *DB) RotateKey(key Key) error {
	db.rotateMu.Lock()
	defer db.rotateMu.Unlock()
	// Add the key before sealing anything with it, so readers can open
	// what the rotation writes the moment it commits. If the rotation
	// fails, the committed canary still names the old key, and nothing is
	// sealed under the new one.
	keys, err := db.keys.Load().with(key)
	if err != nil {
		return fmt.Errorf("rotate to %s: %w", key, err)
	}
	db.keys.Store(keys)
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return reseal(tx, keys, key.id()) }); err != nil {
		return fmt.Errorf("rotate to %s: %w", key, err)
	}
	return nil
}

// Backup writes a consistent copy of the database to w while it stays in
// use, and returns how many bytes it wrote. The copy holds secrets only
// encrypted, and needs the current key to be opened.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("back up %s: %w", db.path, err)
	}
	return n, nil
}

// EachPasswordHash calls fn with the password hash of every user that has
// one, for the gateway's decoy (gateway.Config.StoredPasswordHashes). The
// bytes are valid only during the call.
func (db *DB) EachPasswordHash(fn func(hash []byte)) error {
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAccounts).ForEach(func(k, _ []byte) error {
			rec, _, err := loadAccount(tx, string(k))
			if err != nil {
				return err
			}
			if rec.PasswordHash != nil {
				fn(rec.PasswordHash)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("list password hashes: %w", err)
	}
	return nil
}
