package storage

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/secrets"
	bolt "go.etcd.io/bbolt"
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
	Revoked         []account.Revocation `json:"revoked,omitempty"`
	RecoverySession uint64               `json:"recovery_session,omitempty"`
	// Passkeys are public keys: they need no sealing.
	Passkeys        []account.Passkey        `json:"passkeys,omitempty"`
	SpentChallenges []account.SpentChallenge `json:"spent_challenges,omitempty"`
	// AppPasswords keep only keyed hashes of their values.
	AppPasswords []account.AppPassword `json:"app_passwords,omitempty"`
	ConfigUser   bool                  `json:"config_user,omitempty"`
	// Sessions and Devices are the registry of SPEC §16.
	Sessions []account.SessionRecord    `json:"sessions,omitempty"`
	Devices  []account.RememberedDevice `json:"devices,omitempty"`
}

// pendingRecord is an enrollment shown but not yet confirmed.
type pendingRecord struct {
	Secret  []byte `json:"secret"` // sealed
	Expires int64  `json:"expires"`
	Session uint64 `json:"session,omitempty"`
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

// sealed is what rec keeps of the account's secrets.
func (rec accountRecord) sealed() secrets.Sealed {
	s := secrets.Sealed{TOTP: rec.TOTPSecret}
	if rec.Pending != nil {
		s.Pending = rec.Pending.Secret
	}
	return s
}

// plain is rec in the form the gateway works on, without its secrets.
func plain(user string, rec accountRecord, stored bool) account.Account {
	a := account.Account{
		Name:            user,
		PasswordHash:    rec.PasswordHash,
		LastStep:        rec.LastStep,
		BackupCodes:     rec.BackupCodes,
		MustRegenerate:  rec.MustRegenerate,
		Generation:      rec.Generation,
		Revoked:         rec.Revoked,
		RecoverySession: rec.RecoverySession,
		AppPasswords:    rec.AppPasswords,
		ConfigUser:      rec.ConfigUser,
		Sessions:        rec.Sessions,
		Devices:         rec.Devices,
		Passkeys:        rec.Passkeys,
		SpentChallenges: rec.SpentChallenges,
		Stored:          stored,
	}
	if p := rec.Pending; p != nil {
		a.Pending = &account.Enrollment{Expires: time.Unix(0, p.Expires), Session: p.Session}
	}
	return a
}

// withheld is rec with its secrets withheld (see account.Store.Accounts):
// it decrypts nothing.
func withheld(user string, rec accountRecord, stored bool) account.Account {
	a := plain(user, rec, stored)
	rec.sealed().Withhold(&a)
	return a
}

// account decrypts rec into the form the gateway works on.
func (db *DB) account(user string, rec accountRecord, stored bool) (account.Account, error) {
	a := plain(user, rec, stored)
	err := db.keys.Load().OpenAccount(&a, rec.sealed())
	return a, err
}

// record encrypts a into the stored form. Secrets a did not change keep
// their ciphertext from old, the record a was loaded from.
func (db *DB) record(tx *bolt.Tx, a account.Account, was account.Account, old accountRecord) (accountRecord, error) {
	a = a.Clone()
	rec := accountRecord{
		PasswordHash:    a.PasswordHash,
		LastStep:        a.LastStep,
		BackupCodes:     a.BackupCodes,
		MustRegenerate:  a.MustRegenerate,
		Generation:      a.Generation,
		Revoked:         a.Revoked,
		RecoverySession: a.RecoverySession,
		AppPasswords:    a.AppPasswords,
		ConfigUser:      a.ConfigUser,
		Sessions:        a.Sessions,
		Devices:         a.Devices,
		Passkeys:        a.Passkeys,
		SpentChallenges: a.SpentChallenges,
	}
	s, err := db.keys.Load().SealAccount(a, was, old.sealed(), func() (secrets.KeyID, error) { return currentKey(tx) })
	if err != nil {
		return rec, err
	}
	rec.TOTPSecret = s.TOTP
	if p := a.Pending; p != nil {
		rec.Pending = &pendingRecord{Secret: s.Pending, Expires: p.Expires.UnixNano(), Session: p.Session}
	}
	return rec, nil
}

// Account implements account.Store.
func (db *DB) Account(user string) (account.Account, error) {
	var a account.Account
	err := db.bolt.View(func(tx *bolt.Tx) error {
		rec, stored, err := loadAccount(tx, user)
		if err != nil {
			return err
		}
		a, err = db.account(user, rec, stored)
		return err
	})
	if err != nil {
		return account.Account{Name: user}, fmt.Errorf("read account %q: %w", user, err)
	}
	return a, nil
}

// UpdateAccount implements account.Store: one bbolt write transaction.
func (db *DB) UpdateAccount(user string, fn func(*account.Account) error) error {
	var fnErr error
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		old, stored, err := loadAccount(tx, user)
		if err != nil {
			return err
		}
		was, err := db.account(user, old, stored)
		if err != nil {
			return err
		}
		var a account.Account
		if a, fnErr = account.Apply(user, was, fn); fnErr != nil {
			return fnErr
		}
		if a.Removed {
			if err := tx.Bucket(bucketAccounts).Delete([]byte(user)); err != nil {
				return fmt.Errorf("delete account: %w", err)
			}
			if err := reindex(tx, user, indexOf(old, stored), indexed{}); err != nil {
				return err
			}
			return db.putSessionState(tx, user, account.SessionStateOf(a))
		}
		rec, err := db.record(tx, a, was, old)
		if err != nil {
			return err
		}
		if err := putAccountRecord(tx, user, rec); err != nil {
			return err
		}
		if err := reindex(tx, user, indexOf(old, stored), indexOf(rec, true)); err != nil {
			return err
		}
		return db.putSessionState(tx, user, account.SessionStateOf(a))
	})
	if fnErr != nil && err == fnErr {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("update account %q: %w", user, err)
	}
	return nil
}

// Accounts implements account.Store.
func (db *DB) Accounts() ([]account.Account, error) {
	list, err := db.AccountsAfter("", math.MaxInt)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return list, nil
}

// AccountsAfter implements account.Store.
func (db *DB) AccountsAfter(after string, limit int) ([]account.Account, error) {
	var list []account.Account
	err := db.bolt.View(func(tx *bolt.Tx) error {
		list = nil
		c := tx.Bucket(bucketAccounts).Cursor()
		k, _ := c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, _ = c.Next()
		}
		for ; k != nil && len(list) < limit; k, _ = c.Next() {
			name := string(k) // string() copies out of bbolt's memory
			rec, _, err := loadAccount(tx, name)
			if err != nil {
				return err
			}
			list = append(list, withheld(name, rec, true))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list accounts after %q: %w", after, err)
	}
	return list, nil
}
