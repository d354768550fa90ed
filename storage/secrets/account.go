package secrets

import (
	"fmt"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Sealed is what a store keeps of an account's secrets: each the
// ciphertext Seal made for its purpose and the user, nil where the account
// has none. Every store maps it to its own record; the rules for opening,
// sealing and withholding it are written once, here.
type Sealed struct {
	TOTP    []byte // Account.TOTPSecret
	Pending []byte // Account.Pending.Secret
}

// Withhold marks the secrets s holds in a as account.SecretWithheld, the
// form account.Store.Accounts lists: nothing is decrypted, so one damaged
// secret hides no user. The store sets a.Pending (its expiry and session)
// where s.Pending is set; Withhold makes one if the store did not.
func (s Sealed) Withhold(a *account.Account) {
	if s.TOTP != nil {
		a.TOTPSecret = account.SecretWithheld
	}
	if s.Pending != nil {
		if a.Pending == nil {
			a.Pending = &account.Enrollment{}
		}
		a.Pending.Secret = account.SecretWithheld
	}
}

// OpenAccount decrypts s into a, whose Name is the owner the secrets were
// sealed for. a is left withheld (see Sealed.Withhold) where it fails.
func (r *Keyring) OpenAccount(a *account.Account, s Sealed) error {
	if a.Pending != nil && s.Pending == nil {
		// A damaged record: an enrollment must never be shown without
		// the secret it was sealed with.
		return fmt.Errorf("decrypt pending enrollment of %q: the record holds no secret", a.Name)
	}
	s.Withhold(a)
	if s.TOTP != nil {
		secret, err := r.Open(PurposeTOTPSecret, a.Name, s.TOTP)
		if err != nil {
			return fmt.Errorf("decrypt totp secret of %q: %w", a.Name, err)
		}
		a.TOTPSecret = string(secret)
	}
	if s.Pending != nil {
		secret, err := r.Open(PurposePendingSecret, a.Name, s.Pending)
		if err != nil {
			return fmt.Errorf("decrypt pending enrollment of %q: %w", a.Name, err)
		}
		a.Pending.Secret = string(secret)
	}
	return nil
}

// SealAccount seals a's secrets for storing. A secret a kept from was, the
// account as loaded, keeps old's ciphertext (what was was opened from), so
// an update that does not touch a secret does not re-encrypt it. current
// names the key to seal under; it is asked at most once, and only when
// something must be sealed.
func (r *Keyring) SealAccount(a, was account.Account, old Sealed, current func() (KeyID, error)) (Sealed, error) {
	var (
		s   Sealed
		id  KeyID
		got bool
	)
	seal := func(purpose, plain string) ([]byte, error) {
		if !got {
			var err error
			if id, err = current(); err != nil {
				return nil, err
			}
			got = true
		}
		return r.Seal(id, purpose, a.Name, []byte(plain))
	}
	var err error
	switch {
	case a.TOTPSecret == "":
	case a.TOTPSecret == was.TOTPSecret && old.TOTP != nil:
		s.TOTP = old.TOTP
	default:
		if s.TOTP, err = seal(PurposeTOTPSecret, a.TOTPSecret); err != nil {
			return s, fmt.Errorf("encrypt totp secret of %q: %w", a.Name, err)
		}
	}
	if p := a.Pending; p != nil {
		if was.Pending != nil && was.Pending.Secret == p.Secret && old.Pending != nil {
			s.Pending = old.Pending
		} else if s.Pending, err = seal(PurposePendingSecret, p.Secret); err != nil {
			return s, fmt.Errorf("encrypt pending enrollment of %q: %w", a.Name, err)
		}
	}
	return s, nil
}

// ResealAccount re-encrypts s, sealed for user, under the key with id to.
func (r *Keyring) ResealAccount(to KeyID, user string, s Sealed) (Sealed, error) {
	var err error
	if s.TOTP, err = r.Reseal(to, PurposeTOTPSecret, user, s.TOTP); err != nil {
		return s, fmt.Errorf("re-encrypt totp secret of %q: %w", user, err)
	}
	if s.Pending, err = r.Reseal(to, PurposePendingSecret, user, s.Pending); err != nil {
		return s, fmt.Errorf("re-encrypt pending enrollment of %q: %w", user, err)
	}
	return s, nil
}

// Reseal opens sealed and seals it again under the key with id to, for the
// same purpose and owner; nil stays nil.
func (r *Keyring) Reseal(to KeyID, purpose, owner string, sealed []byte) ([]byte, error) {
	if sealed == nil {
		return nil, nil
	}
	plain, err := r.Open(purpose, owner, sealed)
	if err != nil {
		return nil, err
	}
	return r.Seal(to, purpose, owner, plain)
}
