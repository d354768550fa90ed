package account

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"time"
)

// Account is everything the store holds about one user. Names are canonical
// (gateway.CanonicalUser) before they reach a Store.
type Account struct {
	// Name is the canonical user name.
	Name string
	// PasswordHash is the bcrypt or argon2id hash for users managed in the
	// database; nil for users defined only in the configuration.
	PasswordHash []byte
	// TOTPSecret is the base32 TOTP secret in plain text, or "" while TOTP
	// is not enabled. Stores keep it encrypted at rest.
	TOTPSecret string
	// LastStep is the last TOTP time step accepted for this user.
	LastStep int64
	// BackupCodes holds the bcrypt hashes of the unused backup codes.
	BackupCodes [][]byte
	// MustRegenerate is set once a backup code was used and cleared when a
	// fresh set is generated.
	MustRegenerate bool
	// Generation is compared with the generation in every session cookie;
	// raising it ends every session of the user.
	Generation uint64
	// Pending is the enrollment shown but not yet confirmed, if any (it
	// may have expired). Stores keep its secret encrypted at rest.
	Pending *Enrollment
	// Revoked lists sessions ended by logout until they would expire.
	Revoked []Revocation
	// ConfigUser is set while a `user` line of a configuration using the
	// store defines the user (see MarkConfigUsers, ForgetConfigUsers).
	ConfigUser bool
	// RecoverySession is the session that spent the last backup code:
	// while MustRegenerate holds, it alone may make a new set without a
	// TOTP code (SPEC §4 rule 20). 0 when there is none.
	RecoverySession uint64
	// Passkeys are the user's WebAuthn credentials (SPEC §14), a second
	// factor beside TOTP.
	Passkeys []Passkey
	// SpentChallenges are the WebAuthn challenges answered and not yet
	// expired, so that none is answered twice.
	SpentChallenges []SpentChallenge
	// AppPasswords are the user's app passwords (SPEC §15).
	AppPasswords []AppPassword
	// Sessions is the registry of the user's sessions in force, and
	// Devices the browsers remembered at the second factor (registry.go).
	// Raising the generation clears both.
	Sessions []SessionRecord
	Devices  []RememberedDevice
	// Stored reports whether the store had a record of this user when the
	// account was loaded. Stores set it; saving ignores it.
	Stored bool
	// Removed, set by a rule inside UpdateAccount, makes the store delete
	// the record instead of saving it (see Remove).
	Removed bool
}

// SessionState is the part of an Account that every request with a session
// needs. Stores answer it without decrypting anything.
type SessionState struct {
	Generation     uint64
	MustRegenerate bool
	// TOTPEnabled reports whether the user has a second factor: a TOTP
	// secret or a passkey (Account.HasSecondFactor).
	TOTPEnabled bool
	// PasswordSet reports whether the store holds a password for the user
	// (a database-managed user); sessions of users that exist neither in
	// the configuration nor in the store are refused.
	PasswordSet bool
	// RevokedSessions holds the ids of sessions ended by logout that have
	// not yet expired, 8 big-endian bytes each. It is a string so that a
	// SessionState stays comparable and cheap to copy; ask Revoked.
	RevokedSessions string
	// AppPasswords packs what a request with an app password checks of
	// each (see AppPassword); a string for the same reason.
	AppPasswords string
}

// SessionStateOf is the one rule for what a request with a session checks
// of an account. Stores call it on every account they commit and answer
// SessionState with the result.
func SessionStateOf(a Account) SessionState {
	if a.Removed {
		return SessionState{Generation: a.Generation}
	}
	return SessionState{
		Generation:      a.Generation,
		MustRegenerate:  a.MustRegenerate,
		TOTPEnabled:     a.HasSecondFactor(),
		PasswordSet:     a.PasswordHash != nil,
		RevokedSessions: revokedString(a.Revoked),
		AppPasswords:    appPasswordsString(a.AppPasswords),
	}
}

// Revoked reports whether the session with this id was ended by logout.
func (s SessionState) Revoked(id uint64) bool {
	for i := 0; i+8 <= len(s.RevokedSessions); i += 8 {
		if binary.BigEndian.Uint64([]byte(s.RevokedSessions[i:i+8])) == id {
			return true
		}
	}
	return false
}

// Revocation is one session ended by logout, remembered until the session
// would have expired anyway.
type Revocation struct {
	ID    uint64    `json:"id"`
	Until time.Time `json:"until"`
}

// revokedString packs the ids of revs into the form
// SessionState.RevokedSessions holds.
func revokedString(revs []Revocation) string {
	if len(revs) == 0 {
		return ""
	}
	b := make([]byte, 0, 8*len(revs))
	for _, r := range revs {
		b = binary.BigEndian.AppendUint64(b, r.ID)
	}
	return string(b)
}

// Enrollment is a TOTP secret shown to the user but not yet confirmed.
type Enrollment struct {
	// Secret is the base32 secret; stores keep it encrypted at rest.
	Secret string
	// Expires is when the enrollment stops being confirmable.
	Expires time.Time
	// Session is the session that asked for it with the password, when a
	// signed-in user moves to a new authenticator: no other session sees
	// or confirms it (SPEC §4 rule 21). 0 for an enrollment at first sign-in.
	Session uint64
}

// The methods below are every rule for changing an Account, written once
// for every Store: plain functions over the account that
// Store.UpdateAccount hands them. They set, never add to, anything outside
// the account, since a store may run them more than once.

// MaxRevokedSessions bounds the sessions a store remembers as revoked per
// user. Revoking one more raises the user's generation instead, which ends
// every session of the user: never fewer than were asked.
const MaxRevokedSessions = 64

// PendingAt returns the pending enrollment if it is still confirmable at now.
func (a *Account) PendingAt(now time.Time) (Enrollment, bool) {
	if a.Pending == nil || !now.Before(a.Pending.Expires) {
		return Enrollment{}, false
	}
	return *a.Pending, true
}

// ConfirmEnrollment makes secret the TOTP secret, records step as the last
// accepted step, replaces the backup codes with backupHashes, clears
// MustRegenerate and removes the pending enrollment: only while the pending
// enrollment still holds secret and has not expired at now (ErrNoEnrollment
// otherwise).
func (a *Account) ConfirmEnrollment(secret string, step int64, backupHashes [][]byte, now time.Time) error {
	p, ok := a.PendingAt(now)
	if !ok || secret == "" || subtle.ConstantTimeCompare([]byte(p.Secret), []byte(secret)) != 1 {
		return ErrNoEnrollment
	}
	a.TOTPSecret = secret
	a.LastStep = step
	a.BackupCodes = cloneCodes(backupHashes)
	a.MustRegenerate = false
	a.RecoverySession = 0
	a.Pending = nil
	return nil
}

// AcceptStep records step as the last accepted TOTP step if it is later
// than the recorded one (RFC 6238 §5.2), and returns ErrStepReused otherwise.
func (a *Account) AcceptStep(step int64) error {
	if step <= a.LastStep {
		return ErrStepReused
	}
	a.LastStep = step
	return nil
}

// SpendBackupCode removes the unused code with this hash and sets
// MustRegenerate; ErrCodeUsed if no unused code has this hash.
func (a *Account) SpendBackupCode(hash []byte) error {
	if len(hash) == 0 {
		return ErrCodeUsed
	}
	for i, c := range a.BackupCodes {
		if bytes.Equal(c, hash) {
			a.BackupCodes = append(a.BackupCodes[:i:i], a.BackupCodes[i+1:]...)
			a.MustRegenerate = true
			return nil
		}
	}
	return ErrCodeUsed
}

// Recover spends the backup code with this hash for the sign-in that
// starts session (SPEC §4 rule 20): every other session and pending
// sign-in of the user ends, and only session may make a new set without
// a TOTP code. ErrCodeUsed if no unused code has this hash.
func (a *Account) Recover(hash []byte, session uint64) error {
	if err := a.SpendBackupCode(hash); err != nil {
		return err
	}
	a.EndSessions()
	a.RecoverySession = session
	return nil
}

// ReplaceBackupCodes voids every code, keeps backupHashes as the new set
// and clears MustRegenerate.
func (a *Account) ReplaceBackupCodes(backupHashes [][]byte) {
	a.BackupCodes = cloneCodes(backupHashes)
	a.MustRegenerate = false
	a.RecoverySession = 0
}

// DisableTOTP removes the TOTP secret, the passkeys, the backup codes, any
// pending enrollment and the app passwords, and clears MustRegenerate:
// every second factor and what rests on it.
func (a *Account) DisableTOTP() {
	a.RevokeAppPasswords()
	a.TOTPSecret = ""
	a.Passkeys = nil
	a.BackupCodes = nil
	a.Pending = nil
	a.MustRegenerate = false
	a.RecoverySession = 0
}

// EndSessions raises the generation, which ends every session of the user
// and every remembered device (their cookies carry the generation too).
func (a *Account) EndSessions() {
	a.Generation++
	a.Sessions, a.Devices = nil, nil
}

// RevokeSession ends the session with this id: SessionStateOf reports it
// until until (its expiry). Revocations over at now are forgotten; past
// MaxRevokedSessions every session ends instead (EndSessions).
func (a *Account) RevokeSession(id uint64, until, now time.Time) {
	a.removeSessionRecord(id)
	kept := make([]Revocation, 0, len(a.Revoked)+1)
	for _, r := range a.Revoked {
		if r.ID == id && !until.After(r.Until) {
			// Already revoked as long: a logout posted again with the
			// same cookie takes no second place.
			return
		}
		if now.Before(r.Until) {
			kept = append(kept, r)
		}
	}
	if len(kept) >= MaxRevokedSessions {
		a.EndSessions()
		a.Revoked = nil
		return
	}
	a.Revoked = append(kept, Revocation{ID: id, Until: until})
}

// SetPassword stores hash (bcrypt or argon2id, as `caddy hash-password`
// prints it) as the password, which makes the user one managed in the
// store. It does not end the user's sessions: EndSessions does that.
func (a *Account) SetPassword(hash []byte) {
	a.PasswordHash = bytes.Clone(hash)
}

// ChangePassword is the one rule for a changed password, whoever changes
// it (`caddy totp-auth user passwd`, or the user on the account page): it
// stores hash as the password, ends every session and pending sign-in of
// the user and revokes their app passwords. Whatever else a new password
// must end belongs here.
func (a *Account) ChangePassword(hash []byte) {
	a.SetPassword(hash)
	a.EndSessions()
	a.RevokeAppPasswords()
}

// ResetTwoFactor removes the TOTP secret, backup codes and pending
// enrollment and ends every session: the next sign-in has to enroll again.
// ErrNotFound if nothing is stored for the user.
func (a *Account) ResetTwoFactor() error {
	if !a.Stored {
		return ErrNotFound
	}
	a.DisableTOTP()
	a.EndSessions()
	return nil
}

// Remove marks everything stored about the user for deletion (ErrNotFound
// if nothing is) and ends the user's sessions: the store keeps the raised
// generation, so a user added again under the name inherits no session.
// The user's failure counters are left to expire.
func (a *Account) Remove() error {
	if !a.Stored {
		return ErrNotFound
	}
	*a = Account{Name: a.Name, Generation: a.Generation + 1, Stored: true, Removed: true}
	return nil
}

// Apply runs fn, the update function a Store was handed, on a copy of was,
// the user's account as loaded, and returns what fn left under the user's
// name; was stays as loaded, so a store can tell what fn changed. An error
// from fn is returned unchanged.
func Apply(user string, was Account, fn func(*Account) error) (Account, error) {
	a := was.Clone()
	if err := fn(&a); err != nil {
		return Account{}, err
	}
	a.Name = user
	return a, nil
}

// Withheld returns a copy of a with its secrets replaced by
// SecretWithheld, as Store.Accounts lists accounts.
func (a Account) Withheld() Account {
	a = a.Clone()
	if a.TOTPSecret != "" {
		a.TOTPSecret = SecretWithheld
	}
	if a.Pending != nil {
		a.Pending.Secret = SecretWithheld
	}
	return a
}

// Clone returns a deep copy of a. A store hands an update function a
// clone of what it loaded, so it can compare the two after the function
// ran, and neither sees the other's later changes.
func (a Account) Clone() Account {
	a.PasswordHash = bytes.Clone(a.PasswordHash)
	a.BackupCodes = cloneCodes(a.BackupCodes)
	a.Revoked = append([]Revocation(nil), a.Revoked...)
	a.Passkeys = clonePasskeys(a.Passkeys)
	a.SpentChallenges = append([]SpentChallenge(nil), a.SpentChallenges...)
	a.AppPasswords = cloneAppPasswords(a.AppPasswords)
	a.Sessions = append([]SessionRecord(nil), a.Sessions...)
	a.Devices = append([]RememberedDevice(nil), a.Devices...)
	if a.Pending != nil {
		p := *a.Pending
		a.Pending = &p
	}
	return a
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
