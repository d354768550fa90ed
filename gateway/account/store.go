package account

import (
	"errors"
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
	// AccountsAfter returns, as Accounts does, the stored accounts whose
	// names sort after after, in name order, at most limit of them: one
	// page of a listing, so that listing 100,000 users holds one page in
	// memory at a time. after "" starts at the first name.
	AccountsAfter(after string, limit int) ([]Account, error)
	// ConfigUsers returns the names of the stored accounts with ConfigUser
	// set, in name order. Start-up and reload read it instead of every
	// account, so a store keeps these names apart (an index) and answers
	// in the time the marked names take, however many accounts there are.
	ConfigUsers() ([]string, error)
	// PasswordModels returns, in no particular order, the HashModel of
	// every kind of password hash the stored accounts have, each once:
	// what the decoy needs (SPEC §4 rule 24). A store keeps how many
	// accounts have each model, changed by every UpdateAccount that
	// commits a new, changed or removed password hash, and answers
	// without reading an account.
	PasswordModels() ([]string, error)

	// UpdateCounters loads the failure counters under keys (a key without
	// one yields a Counter with only its Key), calls fn with them by key
	// and, if fn returns nil, saves them all in one atomic step: those
	// Empty are deleted, the others stored. Keys fn adds to the map are
	// ignored. If fn returns an error nothing is saved and UpdateCounters
	// returns that error unchanged. fn may be called more than once (bbolt
	// batches these writes and retries a failed batch one by one), so it
	// must set its results, never add to them.
	UpdateCounters(keys []string, fn func(map[string]*Counter) error) error
	// Counter returns the failure counter stored under key as last
	// committed; a key without one yields a Counter with only its Key.
	// It reads and never writes.
	Counter(key string) (Counter, error)
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
