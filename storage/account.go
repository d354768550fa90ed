package storage

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/totp-auth/totp_auth/gateway"
)

// accountRecord is the value under a user's name in the accounts bucket.
// Decoding it copies every byte out of bbolt's memory.
type accountRecord struct {
	PasswordHash   []byte         `json:"password_hash,omitempty"`
	TOTPSecret     []byte         `json:"totp_secret,omitempty"` // sealed
	LastStep       int64          `json:"last_step,omitempty"`
	BackupCodes    [][]byte       `json:"backup_codes,omitempty"`
	MustRegenerate bool           `json:"must_regenerate,omitempty"`
	Generation     uint64         `json:"generation,omitempty"`
	Pending        *pendingRecord `json:"pending,omitempty"`
	// Revoked lists sessions ended by logout until they would expire.
	Revoked []gateway.Revocation `json:"revoked,omitempty"`
}

// pendingRecord is an enrollment shown but not yet confirmed.
type pendingRecord struct {
	Secret  []byte `json:"secret"` // sealed
	Expires int64  `json:"expires"`
}

// The sessions bucket holds, per user, what SessionState answers: the
// generation (8 bytes, big endian), a flags byte, then the ids of revoked
// sessions, 8 bytes each.
// putAccount writes it in the same transaction as the account, so the hot
// path reads 9 bytes and decrypts nothing.
const (
	sessionValueSize   = 9
	flagMustRegenerate = 1 << 0
	flagTOTPEnabled    = 1 << 1
	flagPasswordSet    = 1 << 2
)

func encodeSessionState(st gateway.SessionState) []byte {
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

func decodeSessionState(v []byte) (gateway.SessionState, error) {
	if len(v) < sessionValueSize || (len(v)-sessionValueSize)%8 != 0 {
		return gateway.SessionState{}, fmt.Errorf("session state is %d bytes, want %d and 8 per revoked session", len(v), sessionValueSize)
	}
	return gateway.SessionState{
		Generation:      binary.BigEndian.Uint64(v),
		MustRegenerate:  v[8]&flagMustRegenerate != 0,
		TOTPEnabled:     v[8]&flagTOTPEnabled != 0,
		PasswordSet:     v[8]&flagPasswordSet != 0,
		RevokedSessions: string(v[sessionValueSize:]),
	}, nil
}

// loadAccount reads user's record; stored reports whether there was one.
// A user without a record may still have a generation left behind by
// RemoveAccount, which the fresh record continues from, so that sessions
// of a removed user stay ended when the name is added again.
func loadAccount(tx *bolt.Tx, user string) (rec accountRecord, stored bool, err error) {
	if v := tx.Bucket(bucketAccounts).Get([]byte(user)); v != nil {
		if err := json.Unmarshal(v, &rec); err != nil {
			return rec, false, fmt.Errorf("decode account %q: %w", user, err)
		}
		return rec, true, nil
	}
	if v := tx.Bucket(bucketSessions).Get([]byte(user)); v != nil {
		st, err := decodeSessionState(v)
		if err != nil {
			return rec, false, fmt.Errorf("read session state of %q: %w", user, err)
		}
		rec.Generation = st.Generation
	}
	return rec, false, nil
}

// putAccount writes user's record and its session state together.
func (db *DB) putAccount(tx *bolt.Tx, user string, rec accountRecord) error {
	if err := putAccountRecord(tx, user, rec); err != nil {
		return err
	}
	st := gateway.SessionState{
		Generation:     rec.Generation,
		MustRegenerate: rec.MustRegenerate,
		TOTPEnabled:    rec.TOTPSecret != nil,
		PasswordSet:    rec.PasswordHash != nil,
	}
	if len(rec.Revoked) > 0 {
		st.RevokedSessions = gateway.RevokedString(rec.Revoked)
	}
	return db.putSessionState(tx, user, st)
}

// putAccountRecord writes user's record alone, for changes that leave the
// session state as it is (re-encryption).
func putAccountRecord(tx *bolt.Tx, user string, rec accountRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode account %q: %w", user, err)
	}
	if err := tx.Bucket(bucketAccounts).Put([]byte(user), v); err != nil {
		return fmt.Errorf("write account %q: %w", user, err)
	}
	return nil
}

// updateAccount runs change on user's record in one write transaction and
// stores the result, unless change returns an error.
func (db *DB) updateAccount(user string, change func(tx *bolt.Tx, rec *accountRecord, stored bool) error) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		rec, stored, err := loadAccount(tx, user)
		if err != nil {
			return err
		}
		if err := change(tx, &rec, stored); err != nil {
			return err
		}
		return db.putAccount(tx, user, rec)
	})
}

// Account implements gateway.Store.
func (db *DB) Account(user string) (gateway.Account, error) {
	a := gateway.Account{Name: user}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		rec, stored, err := loadAccount(tx, user)
		if err != nil || !stored {
			return err
		}
		a.Stored = true
		a.PasswordHash = rec.PasswordHash
		a.LastStep = rec.LastStep
		a.BackupCodes = rec.BackupCodes
		a.MustRegenerate = rec.MustRegenerate
		a.Generation = rec.Generation
		if rec.TOTPSecret != nil {
			secret, err := db.keys.Load().Open(purposeTOTPSecret, user, rec.TOTPSecret)
			if err != nil {
				return fmt.Errorf("decrypt totp secret of %q: %w", user, err)
			}
			a.TOTPSecret = string(secret)
		}
		return nil
	})
	if err != nil {
		return gateway.Account{Name: user}, fmt.Errorf("read account %q: %w", user, err)
	}
	return a, nil
}

// PendingEnrollment implements gateway.Store.
func (db *DB) PendingEnrollment(user string, now time.Time, create func() (gateway.Enrollment, error)) (gateway.Enrollment, error) {
	var e gateway.Enrollment
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		rec, _, err := loadAccount(tx, user)
		if err != nil {
			return err
		}
		if p := rec.Pending; p != nil && now.UnixNano() < p.Expires {
			secret, err := db.keys.Load().Open(purposePendingSecret, user, p.Secret)
			if err != nil {
				return fmt.Errorf("decrypt pending enrollment: %w", err)
			}
			e = gateway.Enrollment{Secret: string(secret), Expires: time.Unix(0, p.Expires)}
			return nil // unchanged: nothing to write
		}
		fresh, err := create()
		if err != nil {
			return fmt.Errorf("create enrollment: %w", err)
		}
		id, err := currentKey(tx)
		if err != nil {
			return err
		}
		sealed, err := db.keys.Load().Seal(id, purposePendingSecret, user, []byte(fresh.Secret))
		if err != nil {
			return fmt.Errorf("encrypt pending enrollment: %w", err)
		}
		rec.Pending = &pendingRecord{Secret: sealed, Expires: fresh.Expires.UnixNano()}
		if err := db.putAccount(tx, user, rec); err != nil {
			return err
		}
		e = gateway.Enrollment{Secret: fresh.Secret, Expires: time.Unix(0, rec.Pending.Expires)}
		return nil
	})
	if err != nil {
		return gateway.Enrollment{}, fmt.Errorf("pending enrollment of %q: %w", user, err)
	}
	return e, nil
}

// ConfirmEnrollment implements gateway.Store.
func (db *DB) ConfirmEnrollment(user, secret string, step int64, backupHashes [][]byte, now time.Time) error {
	err := db.updateAccount(user, func(tx *bolt.Tx, rec *accountRecord, _ bool) error {
		p := rec.Pending
		if p == nil || now.UnixNano() >= p.Expires || secret == "" {
			return gateway.ErrNoEnrollment
		}
		keys := db.keys.Load()
		pending, err := keys.Open(purposePendingSecret, user, p.Secret)
		if err != nil {
			return fmt.Errorf("decrypt pending enrollment: %w", err)
		}
		if subtle.ConstantTimeCompare(pending, []byte(secret)) != 1 {
			return gateway.ErrNoEnrollment
		}
		id, err := currentKey(tx)
		if err != nil {
			return err
		}
		if rec.TOTPSecret, err = keys.Seal(id, purposeTOTPSecret, user, pending); err != nil {
			return fmt.Errorf("encrypt totp secret: %w", err)
		}
		rec.LastStep = step
		rec.BackupCodes = cloneCodes(backupHashes)
		rec.MustRegenerate = false
		rec.Pending = nil
		return nil
	})
	if err != nil {
		return wrapUnlessSentinel(err, "confirm enrollment of %q", user)
	}
	return nil
}

// AcceptStep implements gateway.Store.
func (db *DB) AcceptStep(user string, step int64) error {
	err := db.updateAccount(user, func(_ *bolt.Tx, rec *accountRecord, _ bool) error {
		if step <= rec.LastStep {
			return gateway.ErrStepReused
		}
		rec.LastStep = step
		return nil
	})
	if err != nil {
		return wrapUnlessSentinel(err, "accept totp step of %q", user)
	}
	return nil
}

// UseBackupCode implements gateway.Store.
func (db *DB) UseBackupCode(user string, hash []byte) error {
	err := db.updateAccount(user, func(_ *bolt.Tx, rec *accountRecord, stored bool) error {
		if !stored || len(hash) == 0 {
			return gateway.ErrCodeUsed
		}
		left, ok := gateway.SpendBackupCode(rec.BackupCodes, hash)
		if !ok {
			return gateway.ErrCodeUsed
		}
		rec.BackupCodes, rec.MustRegenerate = left, true
		return nil
	})
	if err != nil {
		return wrapUnlessSentinel(err, "use backup code of %q", user)
	}
	return nil
}

// ReplaceBackupCodes implements gateway.Store.
func (db *DB) ReplaceBackupCodes(user string, backupHashes [][]byte) error {
	err := db.updateAccount(user, func(_ *bolt.Tx, rec *accountRecord, _ bool) error {
		rec.BackupCodes = cloneCodes(backupHashes)
		rec.MustRegenerate = false
		return nil
	})
	if err != nil {
		return fmt.Errorf("replace backup codes of %q: %w", user, err)
	}
	return nil
}

// DisableTOTP implements gateway.Store.
func (db *DB) DisableTOTP(user string) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		rec, stored, err := loadAccount(tx, user)
		if err != nil || !stored {
			return err
		}
		disable(&rec)
		return db.putAccount(tx, user, rec)
	})
	if err != nil {
		return fmt.Errorf("disable totp of %q: %w", user, err)
	}
	return nil
}

func disable(rec *accountRecord) {
	rec.TOTPSecret = nil
	rec.BackupCodes = nil
	rec.Pending = nil
	rec.MustRegenerate = false
}

// BumpGeneration implements gateway.Store.
func (db *DB) BumpGeneration(user string) (uint64, error) {
	var gen uint64
	err := db.updateAccount(user, func(_ *bolt.Tx, rec *accountRecord, _ bool) error {
		rec.Generation++
		gen = rec.Generation
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("raise session generation of %q: %w", user, err)
	}
	return gen, nil
}

// RevokeSession implements gateway.Store.
func (db *DB) RevokeSession(user string, id uint64, until, now time.Time) error {
	err := db.updateAccount(user, func(_ *bolt.Tx, rec *accountRecord, _ bool) error {
		revs, full := gateway.AddRevocation(rec.Revoked, id, until, now)
		if full {
			rec.Generation++
		}
		rec.Revoked = revs
		return nil
	})
	if err != nil {
		return fmt.Errorf("end session of %q: %w", user, err)
	}
	return nil
}

// SessionKeys implements gateway.Store.
func (db *DB) SessionKeys(generate func() (hashKey, blockKey []byte, err error)) (hashKey, blockKey []byte, err error) {
	// Usually the keys exist: read them without taking the write lock.
	var found bool
	err = db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		hashKey, blockKey, found, err = db.readSessionKeys(tx)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read session keys: %w", err)
	}
	if found {
		return hashKey, blockKey, nil
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		var err error
		hashKey, blockKey, found, err = db.readSessionKeys(tx)
		if err != nil || found {
			return err // another caller stored them first
		}
		if hashKey, blockKey, err = generate(); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		id, err := currentKey(tx)
		if err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		keys := db.keys.Load()
		for _, f := range []struct {
			key     []byte
			purpose string
			value   []byte
		}{{keySessionHash, purposeSessionHash, hashKey}, {keySessionBlock, purposeSessionBlock, blockKey}} {
			sealed, err := keys.Seal(id, f.purpose, "", f.value)
			if err != nil {
				return fmt.Errorf("encrypt %s: %w", f.key, err)
			}
			if err := meta.Put(f.key, sealed); err != nil {
				return fmt.Errorf("write %s: %w", f.key, err)
			}
		}
		hashKey, blockKey = bytes.Clone(hashKey), bytes.Clone(blockKey)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store session keys: %w", err)
	}
	return hashKey, blockKey, nil
}

func (db *DB) readSessionKeys(tx *bolt.Tx) (hashKey, blockKey []byte, found bool, err error) {
	meta := tx.Bucket(bucketMeta)
	h, b := meta.Get(keySessionHash), meta.Get(keySessionBlock)
	if h == nil || b == nil {
		return nil, nil, false, nil
	}
	keys := db.keys.Load()
	if hashKey, err = keys.Open(purposeSessionHash, "", h); err != nil {
		return nil, nil, false, fmt.Errorf("decrypt session hash key: %w", err)
	}
	if blockKey, err = keys.Open(purposeSessionBlock, "", b); err != nil {
		return nil, nil, false, fmt.Errorf("decrypt session block key: %w", err)
	}
	return hashKey, blockKey, true, nil
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

// wrapUnlessSentinel adds context to internal failures but returns the
// gateway's sentinel errors as they are, since the flow acts on them.
func wrapUnlessSentinel(err error, format string, args ...any) error {
	switch err {
	case gateway.ErrStepReused, gateway.ErrCodeUsed, gateway.ErrNoEnrollment, gateway.ErrNotFound:
		return err
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
