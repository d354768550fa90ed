package account

import (
	"bytes"
	"errors"
	"strings"
	"time"
	"unicode/utf8"
)

// The passkeys of an account (SPEC §14) and every rule for changing them,
// written once for every Store like the rules in account.go.

// MaxPasskeys bounds how many passkeys one user may register.
const MaxPasskeys = 20

// MaxSpentChallenges bounds how many answered WebAuthn challenges one user
// has remembered at once (each for at most a pending sign-in's 5 minutes). Past it a new
// answer is refused rather than an old challenge forgotten, which would
// let it be replayed.
const MaxSpentChallenges = 64

// maxPasskeyName bounds a passkey's name, in characters.
const maxPasskeyName = 64

// Errors of the passkey rules, returned from inside an update.
var (
	// ErrNoPasskey means the user has no passkey with the given id.
	ErrNoPasskey = errors.New("no such passkey")
	// ErrPasskeyExists means a passkey with the same credential id is
	// already registered.
	ErrPasskeyExists = errors.New("passkey already registered")
	// ErrTooManyPasskeys means the user already has MaxPasskeys passkeys.
	ErrTooManyPasskeys = errors.New("too many passkeys")
	// ErrLastFactor means removing the passkey would leave a user who
	// must use two-factor authentication without a second factor.
	ErrLastFactor = errors.New("last second factor")
	// ErrPasskeyClone means an assertion's signature counter did not grow
	// past the stored one while either was non-zero: the authenticator
	// may have been cloned.
	ErrPasskeyClone = errors.New("passkey signature counter did not grow")
	// ErrChallengeUsed means a WebAuthn challenge was answered before.
	ErrChallengeUsed = errors.New("passkey challenge already answered")
	// ErrTooManyChallenges means MaxSpentChallenges answered challenges
	// of the user have not expired yet.
	ErrTooManyChallenges = errors.New("too many passkey answers in flight")
)

// Passkey is one WebAuthn credential of a user. Its public key needs no
// encryption at rest; it is bound to its user by the record it is in.
type Passkey struct {
	// ID is the credential id the authenticator chose.
	ID []byte `json:"id"`
	// Name is what the user calls it ("Phone", "YubiKey").
	Name string `json:"name"`
	// PublicKey is the COSE-encoded public key.
	PublicKey []byte `json:"public_key"`
	// AttestationType is what the registration's attestation proved
	// ("none", "self", ...), as the library reports it.
	AttestationType string `json:"attestation_type,omitempty"`
	// SignCount is the last signature counter accepted; 0 for
	// authenticators (synced passkeys) that do not count.
	SignCount uint32 `json:"sign_count,omitempty"`
	// BackupEligible and BackupState are the BE and BS flags: kept from
	// registration (BE never changes) and updated on use (BS may), so
	// synced passkeys keep verifying.
	BackupEligible bool `json:"backup_eligible,omitempty"`
	BackupState    bool `json:"backup_state,omitempty"`
	// UserVerified reports whether the authenticator verified the user
	// (PIN or biometric) when it was registered.
	UserVerified bool `json:"user_verified,omitempty"`
	// AAGUID names the authenticator model, when it tells.
	AAGUID []byte `json:"aaguid,omitempty"`
	// Transports are how a browser may reach the authenticator ("usb",
	// "internal", "hybrid", ...).
	Transports []string `json:"transports,omitempty"`
	// RPID is the relying party the credential is scoped to; it is
	// offered and accepted only on hosts equal to it or under it.
	RPID string `json:"rp_id"`
	// Discoverable is set when the credential was created as a
	// discoverable one (a block with passkey_login asked for that).
	Discoverable bool `json:"discoverable,omitempty"`
	// Created and LastUsed are when it was registered and last accepted.
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// SpentChallenge is a WebAuthn challenge that was answered, remembered
// until its ceremony would have expired anyway, so that no second answer
// (a replay, or the same answer sent to another instance) is accepted.
type SpentChallenge struct {
	Challenge string    `json:"challenge"`
	Until     time.Time `json:"until"`
}

// HasSecondFactor reports whether the user has a second factor: a TOTP
// secret or a passkey.
func (a *Account) HasSecondFactor() bool {
	return a.TOTPSecret != "" || len(a.Passkeys) > 0
}

// Passkey returns the user's passkey with this credential id.
func (a *Account) Passkey(id []byte) (Passkey, bool) {
	for _, p := range a.Passkeys {
		if bytes.Equal(p.ID, id) {
			return p, true
		}
	}
	return Passkey{}, false
}

// PasskeyName is the name a passkey is stored under: trimmed, at most
// maxPasskeyName characters, and "Passkey" when empty.
func PasskeyName(name string) string {
	name = strings.Join(strings.Fields(name), " ")
	if utf8.RuneCountInString(name) > maxPasskeyName {
		name = string([]rune(name)[:maxPasskeyName])
	}
	if name == "" {
		return "Passkey"
	}
	return name
}

// AddPasskey registers p. ErrPasskeyExists if a passkey with its id is
// registered already, ErrTooManyPasskeys past MaxPasskeys.
func (a *Account) AddPasskey(p Passkey) error {
	if _, ok := a.Passkey(p.ID); ok {
		return ErrPasskeyExists
	}
	if len(a.Passkeys) >= MaxPasskeys {
		return ErrTooManyPasskeys
	}
	p.Name = PasskeyName(p.Name)
	a.Passkeys = append(clonePasskeys(a.Passkeys), clonePasskey(p))
	return nil
}

// EnrollPasskey ends a first enrollment with a passkey: p becomes the
// user's first second factor and backupHashes the backup codes, as
// ConfirmEnrollment does for TOTP. Any pending TOTP enrollment ends.
func (a *Account) EnrollPasskey(p Passkey, backupHashes [][]byte) error {
	if err := a.AddPasskey(p); err != nil {
		return err
	}
	a.ReplaceBackupCodes(backupHashes)
	a.Pending = nil
	return nil
}

// RenamePasskey gives the passkey with this id a new name.
func (a *Account) RenamePasskey(id []byte, name string) error {
	for i, p := range a.Passkeys {
		if bytes.Equal(p.ID, id) {
			a.Passkeys = clonePasskeys(a.Passkeys)
			a.Passkeys[i].Name = PasskeyName(name)
			return nil
		}
	}
	return ErrNoPasskey
}

// RemovePasskey removes the passkey with this id. Where two-factor
// authentication is required (require2FA), the user's last second factor
// stays: ErrLastFactor (disabling 2FA removes it instead).
func (a *Account) RemovePasskey(id []byte, require2FA bool) error {
	for i, p := range a.Passkeys {
		if !bytes.Equal(p.ID, id) {
			continue
		}
		if require2FA && a.TOTPSecret == "" && len(a.Passkeys) == 1 {
			return ErrLastFactor
		}
		a.Passkeys = append(clonePasskeys(a.Passkeys[:i]), clonePasskeys(a.Passkeys[i+1:])...)
		if len(a.Passkeys) == 0 {
			a.Passkeys = nil
		}
		return nil
	}
	return ErrNoPasskey
}

// UsePasskey records an accepted assertion of the passkey with this id:
// its signature counter, backed-up flag and time. A counter that does not
// grow past the stored one, where either is non-zero, is refused as a
// possible clone (ErrPasskeyClone) and changes nothing: the passkey stays
// usable by the authenticator that holds the higher counter.
func (a *Account) UsePasskey(id []byte, counter uint32, backedUp bool, now time.Time) error {
	for i, p := range a.Passkeys {
		if !bytes.Equal(p.ID, id) {
			continue
		}
		if counter <= p.SignCount && (counter != 0 || p.SignCount != 0) {
			return ErrPasskeyClone
		}
		a.Passkeys = clonePasskeys(a.Passkeys)
		a.Passkeys[i].SignCount = counter
		a.Passkeys[i].BackupState = backedUp
		a.Passkeys[i].LastUsed = now
		return nil
	}
	return ErrNoPasskey
}

// SpendChallenge marks a WebAuthn challenge as answered until until:
// ErrChallengeUsed if it was answered before. Challenges over at now are
// forgotten; ErrTooManyChallenges if MaxSpentChallenges are still in force.
func (a *Account) SpendChallenge(challenge string, until, now time.Time) error {
	if challenge == "" {
		return ErrChallengeUsed
	}
	kept := make([]SpentChallenge, 0, len(a.SpentChallenges)+1)
	for _, c := range a.SpentChallenges {
		if c.Challenge == challenge {
			return ErrChallengeUsed
		}
		if now.Before(c.Until) {
			kept = append(kept, c)
		}
	}
	if len(kept) >= MaxSpentChallenges {
		return ErrTooManyChallenges
	}
	a.SpentChallenges = append(kept, SpentChallenge{Challenge: challenge, Until: until})
	return nil
}

// RemovePasskeys removes every passkey: disabling two-factor
// authentication and resetting it act on passkeys as on TOTP.
func (a *Account) RemovePasskeys() { a.Passkeys = nil }

func clonePasskey(p Passkey) Passkey {
	p.ID = bytes.Clone(p.ID)
	p.PublicKey = bytes.Clone(p.PublicKey)
	p.AAGUID = bytes.Clone(p.AAGUID)
	p.Transports = append([]string(nil), p.Transports...)
	return p
}

func clonePasskeys(ps []Passkey) []Passkey {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Passkey, len(ps))
	for i, p := range ps {
		out[i] = clonePasskey(p)
	}
	return out
}
