package account

import (
	"errors"
	"fmt"
	"time"
)

// This file applies the rules of Account (account.go) through a Store: each
// function is one Store.UpdateAccount. They are exported so that operator
// tools and the store conformance suite change a store exactly as the
// sign-in flow does.

// errUnchanged ends an update that has nothing to save; the functions
// below report it as success.
var errUnchanged = errors.New("nothing to change")

func update(s Store, user string, fn func(*Account) error) error {
	if err := s.UpdateAccount(user, fn); err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	return nil
}

// EnrollmentFor returns the user's enrollment if it is still valid at now
// and belongs to session (0: a first sign-in); otherwise it stores the
// result of create, bound to session, in its place and returns that. A
// secret one session asked for is never handed to another (SPEC §4 rule 21).
func EnrollmentFor(s Store, user string, session uint64, now time.Time, create func() (Enrollment, error)) (Enrollment, error) {
	var e Enrollment
	err := update(s, user, func(a *Account) error {
		if p, ok := a.PendingAt(now); ok && p.Session == session {
			e = p
			return errUnchanged
		}
		fresh, err := create()
		if err != nil {
			return fmt.Errorf("create enrollment for %q: %w", user, err)
		}
		fresh.Session = session
		a.Pending, e = &fresh, fresh
		return nil
	})
	if err != nil {
		return Enrollment{}, err
	}
	return e, nil
}

// ConfirmEnrollment applies Account.ConfirmEnrollment to the user's account.
func ConfirmEnrollment(s Store, user, secret string, step int64, backupHashes [][]byte, now time.Time) error {
	return update(s, user, func(a *Account) error { return a.ConfirmEnrollment(secret, step, backupHashes, now) })
}

// AcceptStep applies Account.AcceptStep to the user's account.
func AcceptStep(s Store, user string, step int64) error {
	return update(s, user, func(a *Account) error { return a.AcceptStep(step) })
}

// UseBackupCode applies Account.SpendBackupCode to the user's account.
func UseBackupCode(s Store, user string, hash []byte) error {
	return update(s, user, func(a *Account) error { return a.SpendBackupCode(hash) })
}

// Recover applies Account.Recover to the user's account and returns the
// generation the session it names starts with.
func Recover(s Store, user string, hash []byte, session uint64) (uint64, error) {
	var gen uint64
	err := update(s, user, func(a *Account) error {
		if err := a.Recover(hash, session); err != nil {
			return err
		}
		gen = a.Generation
		return nil
	})
	return gen, err
}

// ReplaceBackupCodes applies Account.ReplaceBackupCodes to the user's account.
func ReplaceBackupCodes(s Store, user string, backupHashes [][]byte) error {
	return update(s, user, func(a *Account) error {
		a.ReplaceBackupCodes(backupHashes)
		return nil
	})
}

// DisableTOTP applies Account.DisableTOTP to the user's account, if there is one.
func DisableTOTP(s Store, user string) error {
	return update(s, user, func(a *Account) error {
		if !a.Stored {
			return errUnchanged
		}
		a.DisableTOTP()
		return nil
	})
}

// BumpGeneration ends every session of the user and returns the new generation.
func BumpGeneration(s Store, user string) (uint64, error) {
	var gen uint64
	err := update(s, user, func(a *Account) error {
		a.EndSessions()
		gen = a.Generation
		return nil
	})
	return gen, err
}

// RevokeSession applies Account.RevokeSession to the user's account.
func RevokeSession(s Store, user string, id uint64, until, now time.Time) error {
	return update(s, user, func(a *Account) error {
		a.RevokeSession(id, until, now)
		return nil
	})
}

// Users of `user` lines can be signed out for good (SPEC §4 rule 18). A
// session of such a user is bound to the hash it was proven against (see
// Session.Credential), so a changed line ends it. A removed line must end
// it too, and adding the line back must not bring it back: the store
// remembers which names a configuration defined (Account.ConfigUser), and
// once a complete configuration no longer defines one, its sessions end.
// The Caddy adapter says when a configuration is complete (in force, with
// every site block provisioned); the rules are here.

// MarkConfigUsers records that a configuration using s defines names with
// `user` lines. It writes only for names not marked yet.
func MarkConfigUsers(s Store, names map[string]bool) error {
	for name := range names {
		err := update(s, name, func(a *Account) error {
			if a.ConfigUser {
				return errUnchanged
			}
			a.ConfigUser = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("remember the `user` line of %s: %w", name, err)
		}
	}
	return nil
}

// ForgetConfigUsers ends every session and pending sign-in, and revokes
// the app passwords, of each user a `user` line defined once but no
// configuration using s defines now
// (defined: the names every configuration in force defines), and forgets
// the mark, so that adding the line back starts afresh. It returns the
// names it signed out.
func ForgetConfigUsers(s Store, defined map[string]bool) ([]string, error) {
	// The marked names, never every account: this runs on every reload.
	marked, err := s.ConfigUsers()
	if err != nil {
		return nil, err
	}
	var ended []string
	for _, name := range marked {
		if defined[name] {
			continue
		}
		err := update(s, name, func(a *Account) error {
			if !a.ConfigUser || defined[a.Name] {
				return errUnchanged
			}
			a.ConfigUser = false
			a.EndSessions()
			a.RevokeAppPasswords()
			return nil
		})
		if err != nil {
			return ended, fmt.Errorf("sign out %s, whose `user` line is gone: %w", name, err)
		}
		ended = append(ended, name)
	}
	return ended, nil
}
