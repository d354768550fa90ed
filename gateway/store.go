package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"
)

// Errors a Store returns for conditions the flow acts on. Anything else a
// Store returns is an internal failure, and the gateway fails closed on it.
var (
	// ErrStepReused means a TOTP time step at or before the last accepted
	// one was offered again (RFC 6238 §5.2).
	ErrStepReused = errors.New("totp time step already used")
	// ErrCodeUsed means the backup code is no longer among the user's unused codes.
	ErrCodeUsed = errors.New("backup code already used")
	// ErrNoEnrollment means there is no unexpired pending enrollment with the
	// given secret (it expired, was confirmed, or was replaced).
	ErrNoEnrollment = errors.New("no pending enrollment")
	// ErrNotFound means the named account does not exist in the store.
	ErrNotFound = errors.New("account not found")
)

// Account is everything the store holds about one user. Names are canonical
// (see CanonicalUser) before they reach a Store.
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
	// Stored reports whether the store has any record of this user.
	Stored bool
}

// SessionState is the part of an Account that every request with a session
// needs. Stores answer it without decrypting anything.
type SessionState struct {
	Generation     uint64
	MustRegenerate bool
	TOTPEnabled    bool
	// PasswordSet reports whether the store holds a password for the user
	// (a database-managed user); sessions of users that exist neither in
	// the configuration nor in the store are refused.
	PasswordSet bool
	// RevokedSessions holds the ids of sessions ended by logout that have
	// not yet expired, 8 big-endian bytes each. It is a string so that a
	// SessionState stays comparable and cheap to copy; ask Revoked.
	RevokedSessions string
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

// MaxRevokedSessions bounds the sessions a store remembers as revoked per
// user. Revoking one more raises the user's generation instead, which ends
// every session of the user: never fewer than were asked.
const MaxRevokedSessions = 64

// Revocation is one session ended by logout, remembered until the session
// would have expired anyway.
type Revocation struct {
	ID    uint64    `json:"id"`
	Until time.Time `json:"until"`
}

// RevokedString packs the ids of revs into the form
// SessionState.RevokedSessions holds.
func RevokedString(revs []Revocation) string {
	b := make([]byte, 0, 8*len(revs))
	for _, r := range revs {
		b = binary.BigEndian.AppendUint64(b, r.ID)
	}
	return string(b)
}

// SpendBackupCode returns codes without the one whose hash is hash, and
// whether it was there: the rule both stores apply inside their write.
func SpendBackupCode(codes [][]byte, hash []byte) ([][]byte, bool) {
	if len(hash) == 0 {
		return codes, false
	}
	for i, c := range codes {
		if bytes.Equal(c, hash) {
			return append(codes[:i:i], codes[i+1:]...), true
		}
	}
	return codes, false
}

// AddRevocation returns revs without the revocations over at now, plus
// one for id until until, and whether the list is full instead (then the
// caller ends every session by raising the generation, and clears revs).
func AddRevocation(revs []Revocation, id uint64, until, now time.Time) ([]Revocation, bool) {
	kept := make([]Revocation, 0, len(revs)+1)
	for _, r := range revs {
		if now.Before(r.Until) {
			kept = append(kept, r)
		}
	}
	if len(kept) >= MaxRevokedSessions {
		return nil, true
	}
	return append(kept, Revocation{ID: id, Until: until}), false
}

// Enrollment is a TOTP secret shown to the user but not yet confirmed.
type Enrollment struct {
	// Secret is the base32 secret; stores keep it encrypted at rest.
	Secret string
	// Expires is when the enrollment stops being confirmable.
	Expires time.Time
}

// Limit names one failure counter and how many failures it allows per window.
type Limit struct {
	Key string
	Max int
}

// Attempt is a slot taken in one or more failure counters before a password
// or code is evaluated. It ends with exactly one of Store.ReleaseAttempt
// (correct, or refused unevaluated) or Store.FailAttempt.
type Attempt struct {
	Limits []Limit
	// WindowStarts records, per limit, the window the slot was taken in, so
	// a late release never frees a slot of a newer window.
	WindowStarts []time.Time
	// Failures records, per limit, how many failures its counter held when
	// the slot was taken, so a failed attempt can say how many are left.
	Failures []int
}

// Lock describes a counter that refuses attempts.
type Lock struct {
	Key        string
	RetryAfter time.Duration
}

// Store is the persistence the gateway needs. Every method is safe for
// concurrent use, and every method that changes more than one value does so
// atomically.
type Store interface {
	// Account returns the user's account with its TOTP secret decrypted.
	// A user the store has no record of yields Account{Name: user} and no error.
	Account(user string) (Account, error)
	// SessionState returns what a request with a session must check.
	// A user the store has no record of yields the zero SessionState.
	SessionState(user string) (SessionState, error)

	// PendingEnrollment returns the user's enrollment if it is still valid
	// at now; otherwise it stores the result of create and returns that.
	PendingEnrollment(user string, now time.Time, create func() (Enrollment, error)) (Enrollment, error)
	// ConfirmEnrollment makes secret the user's TOTP secret, records step as
	// the last accepted step, replaces the backup codes with backupHashes,
	// clears MustRegenerate and removes the pending enrollment: all at once,
	// and only while the pending enrollment still holds secret and has not
	// expired at now (ErrNoEnrollment otherwise).
	ConfirmEnrollment(user, secret string, step int64, backupHashes [][]byte, now time.Time) error
	// AcceptStep records step as the user's last accepted TOTP step if it is
	// later than the stored one, and returns ErrStepReused otherwise.
	AcceptStep(user string, step int64) error
	// UseBackupCode removes the unused code with this hash and sets
	// MustRegenerate; ErrCodeUsed if no unused code has this hash.
	UseBackupCode(user string, hash []byte) error
	// ReplaceBackupCodes voids every code of the user, stores backupHashes
	// as the new set and clears MustRegenerate.
	ReplaceBackupCodes(user string, backupHashes [][]byte) error
	// DisableTOTP removes the TOTP secret, the backup codes and any pending
	// enrollment of the user, and clears MustRegenerate.
	DisableTOTP(user string) error
	// BumpGeneration raises the user's generation and returns the new one.
	BumpGeneration(user string) (uint64, error)
	// RevokeSession ends the user's session with this id: SessionState
	// reports it in RevokedSessions until until (its expiry). Revocations
	// over at now are forgotten; past MaxRevokedSessions the store raises
	// the generation instead (see AddRevocation).
	RevokeSession(user string, id uint64, until, now time.Time) error

	// TakeAttempt takes one slot in each counter. A counter that is locked
	// at now, or whose slots for the current window are all taken, refuses;
	// then no slot is taken anywhere and the returned Lock says which
	// counter refused and for how long. window is both the counting window
	// (from the first failure) and the lock length.
	TakeAttempt(now time.Time, window time.Duration, limits []Limit) (Attempt, *Lock, error)
	// ReleaseAttempt gives the attempt's slots back.
	ReleaseAttempt(a Attempt) error
	// FailAttempt turns the attempt's slots into failures. Each counter that
	// thereby reaches its Max is locked for window from now; those are returned.
	FailAttempt(a Attempt, now time.Time, window time.Duration) ([]Lock, error)
	// ResetFailures forgets the failures counted under key.
	ResetFailures(key string) error

	// SessionKeys returns the stored cookie keys, storing the result of
	// generate first if there are none yet.
	SessionKeys(generate func() (hashKey, blockKey []byte, err error)) (hashKey, blockKey []byte, err error)
}
