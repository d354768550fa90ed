package gateway

import (
	"encoding/binary"
	"errors"
	"time"
)

// Store is the persistence the gateway needs: reads, and atomic updates in
// the style of bbolt's db.Update(func(*Tx) error). A Store only loads,
// locks and saves records (and may encrypt them at rest); every rule of
// what to change lives in this package, as functions over Account and
// Counter that the gateway passes to UpdateAccount and UpdateCounters. Every
// method is safe for concurrent use.
type Store interface {
	// Account returns the user's account with its secrets (TOTPSecret,
	// Pending.Secret) decrypted. A user the store has no record of yields
	// Account{Name: user} with the generation a removed record left behind
	// (see UpdateAccount), and no error.
	Account(user string) (Account, error)
	// SessionState returns SessionStateOf the user's account as last
	// committed. It is on the path of every request with a session: it
	// must not decrypt anything or write, and should not take a lock that
	// writers hold for long. A user the store has no record of yields
	// SessionStateOf(Account{Name: user}) (with the generation a removed
	// record left behind).
	SessionState(user string) (SessionState, error)
	// UpdateAccount loads the user's account as Account returns it, calls
	// fn with it and, if fn returns nil, saves the account fn left in one
	// atomic step: no other UpdateAccount of the same user interleaves, and
	// a reader sees the account before or after, never between. If fn
	// returns an error nothing is saved and UpdateAccount returns that
	// error unchanged, so callers can test it with errors.Is; this is how a
	// rule refuses (ErrStepReused, ErrCodeUsed, ErrNoEnrollment, ErrNotFound).
	//
	// fn may be called more than once (a store may retry a transaction),
	// so it must set its results, never add to them, and have no other
	// effect. A saved account with Removed set deletes the record; the
	// store keeps only SessionStateOf it (its generation), and a later load
	// of the name starts from that generation, so sessions of a removed
	// user stay ended when the name is added again. After every committed
	// save or removal, SessionState answers SessionStateOf the result.
	UpdateAccount(user string, fn func(*Account) error) error
	// Accounts returns every stored account, in name order, for operator
	// listings. It decrypts nothing, so that one damaged secret does not
	// hide every user: TOTPSecret and Pending.Secret hold SecretWithheld
	// where the account has a secret, and "" where it has none.
	Accounts() ([]Account, error)

	// UpdateCounters loads the failure counters under keys (a key without
	// one yields a Counter with only its Key), calls fn with them by key
	// and, if fn returns nil, saves them all in one atomic step: those
	// Empty are deleted, the others stored. Keys fn adds to the map are
	// ignored. If fn returns an error nothing is saved and UpdateCounters
	// returns that error unchanged. fn may be called more than once (bbolt
	// batches these writes and retries a failed batch one by one), so it
	// must set its results, never add to them.
	UpdateCounters(keys []string, fn func(map[string]*Counter) error) error
	// Counters returns every stored failure counter, for operator
	// listings and metrics.
	Counters() ([]Counter, error)
	// PruneCounters deletes, in one atomic step, every stored counter for
	// which drop returns true, and returns how many it deleted.
	PruneCounters(drop func(Counter) bool) (int, error)

	// SessionKeys returns the stored cookie keys, storing the result of
	// generate first if there are none yet; concurrent first callers all
	// get the keys one of them stored.
	SessionKeys(generate func() (hashKey, blockKey []byte, err error)) (hashKey, blockKey []byte, err error)
}

// SecretWithheld stands for a secret in the accounts Store.Accounts lists.
// It is no TOTP secret: base32 has no lower case.
const SecretWithheld = "withheld"

// Errors the rules return from inside an update, so the update saves
// nothing and the caller learns why.
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
