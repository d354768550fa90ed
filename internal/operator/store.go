// Package operator holds what operators do to a totp_auth store, through
// the admin API or the `caddy totp-auth` commands: add users, change
// passwords, remove users, reset two-factor, list users and locks, lift
// locks and prune counters. It works on any account.Store, through the
// same rules the sign-in flow uses (package account), and knows nothing of
// Caddy or of how a store keeps its records; what only one store can do
// (key rotation and backup of the bbolt file) stays with that store.
package operator

import (
	"errors"
	"fmt"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
)

// Functions taking a user name canonicalise it as the gateway does.

// AccountSummary is an account as `caddy totp-auth user list` shows it:
// no secret and no hash.
type AccountSummary struct {
	// Name is the canonical user name.
	Name string
	// HasPassword reports whether the store holds a password for the
	// user; users defined in the Caddyfile only have none there.
	HasPassword bool
	// TOTPEnabled reports whether a TOTP secret is confirmed.
	TOTPEnabled bool
	// Passkeys is how many passkeys the user registered.
	Passkeys int
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
// prints it) as user's password, creating a user managed in the store if
// there is none. It does not end the user's sessions: EndSessions does that.
func SetPassword(s account.Store, user string, hash []byte) error {
	name, err := canonical(user)
	if err != nil {
		return err
	}
	if len(hash) == 0 {
		return fmt.Errorf("set password of %q: empty password hash", name)
	}
	err = s.UpdateAccount(name, func(a *account.Account) error {
		a.SetPassword(hash)
		return nil
	})
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	return nil
}

// EndSessions ends every session of user.
func EndSessions(s account.Store, user string) error {
	name, err := canonical(user)
	if err != nil {
		return err
	}
	if _, err := account.BumpGeneration(s, name); err != nil {
		return fmt.Errorf("end sessions of %q: %w", name, err)
	}
	return nil
}

// RemoveAccount deletes everything stored about user (account.ErrNotFound
// if nothing is) and ends the user's sessions (account.Account.Remove).
func RemoveAccount(s account.Store, user string) error {
	name, err := canonical(user)
	if err != nil {
		return err
	}
	err = s.UpdateAccount(name, func(a *account.Account) error { return a.Remove() })
	if err != nil && !errors.Is(err, account.ErrNotFound) {
		return fmt.Errorf("remove account %q: %w", name, err)
	}
	return err
}

// ResetTOTP removes user's TOTP secret, backup codes and pending enrollment
// and ends all of the user's sessions, at once: the next sign-in has to
// enroll again (account.ErrNotFound if nothing is stored).
func ResetTOTP(s account.Store, user string) error {
	name, err := canonical(user)
	if err != nil {
		return err
	}
	err = s.UpdateAccount(name, func(a *account.Account) error { return a.ResetTwoFactor() })
	if err != nil && !errors.Is(err, account.ErrNotFound) {
		return fmt.Errorf("reset totp of %q: %w", name, err)
	}
	return err
}

// Accounts lists every stored account in name order.
func Accounts(s account.Store) ([]AccountSummary, error) {
	accounts, err := s.Accounts()
	if err != nil {
		return nil, err
	}
	list := make([]AccountSummary, 0, len(accounts))
	for _, a := range accounts {
		list = append(list, summary(a))
	}
	return list, nil
}

// summary is what a listing shows of a.
func summary(a account.Account) AccountSummary {
	return AccountSummary{
		Name:              a.Name,
		HasPassword:       a.PasswordHash != nil,
		TOTPEnabled:       a.TOTPSecret != "",
		Passkeys:          len(a.Passkeys),
		EnrollmentPending: a.Pending != nil,
		BackupCodesLeft:   len(a.BackupCodes),
		MustRegenerate:    a.MustRegenerate,
		Generation:        a.Generation,
	}
}

// LockState returns the lock on key at now, or nil if key is not locked.
func LockState(s account.Store, key string, now time.Time) (*account.Lock, error) {
	c, err := s.Counter(key)
	if err != nil || !c.Locked(now) {
		return nil, err
	}
	return &account.Lock{Key: key, RetryAfter: c.LockedUntil.Sub(now)}, nil
}

// Locks returns every counter that refuses attempts at now, for the
// "active locks" metric and the admin API.
func Locks(s account.Store, now time.Time) ([]account.Lock, error) {
	cs, err := s.Counters()
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	var locks []account.Lock
	for _, c := range cs {
		if c.Locked(now) {
			locks = append(locks, account.Lock{Key: c.Key, RetryAfter: c.LockedUntil.Sub(now)})
		}
	}
	return locks, nil
}

// Unlock forgets the failure counter under key (account.Unlock).
func Unlock(s account.Store, key string) error { return account.Unlock(s, key) }

// PruneCounters deletes the counters whose window and lock are both over
// at now, and returns how many it deleted (account.PruneCounters).
func PruneCounters(s account.Store, now time.Time, window time.Duration) (int, error) {
	return account.PruneCounters(s, now, window)
}
