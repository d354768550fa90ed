package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// accountRow is one row of the accounts table, secrets still sealed.
type accountRow struct {
	Stored         bool
	PasswordHash   []byte
	TOTPSecret     []byte // sealed
	LastStep       int64
	BackupCodes    [][]byte
	MustRegenerate bool
	Generation     uint64
	PendingSecret  []byte // sealed
	PendingExpires int64  // Unix nanoseconds
	Revoked        []gateway.Revocation
}

const accountColumns = `stored, password_hash, totp_secret, last_step, backup_codes,
	must_regenerate, generation, pending_secret, pending_expires, revoked`

func scanAccount(row pgx.Row) (accountRow, error) {
	var (
		r       accountRow
		gen     int64
		revoked []byte
	)
	err := row.Scan(&r.Stored, &r.PasswordHash, &r.TOTPSecret, &r.LastStep, &r.BackupCodes,
		&r.MustRegenerate, &gen, &r.PendingSecret, &r.PendingExpires, &revoked)
	if err != nil {
		return r, err
	}
	r.Generation = uint64(gen)
	if err := json.Unmarshal(revoked, &r.Revoked); err != nil {
		return r, fmt.Errorf("decode revoked sessions: %w", err)
	}
	return r, nil
}

// sessionState is what the hot path needs of r.
func (r accountRow) sessionState() gateway.SessionState {
	st := gateway.SessionState{
		Generation:     r.Generation,
		MustRegenerate: r.MustRegenerate,
		TOTPEnabled:    r.TOTPSecret != nil,
		PasswordSet:    r.PasswordHash != nil,
	}
	if len(r.Revoked) > 0 {
		st.RevokedSessions = gateway.RevokedString(r.Revoked)
	}
	return st
}

// loadAccount reads user's row; a user without one yields the zero row.
func loadAccount(ctx context.Context, q querier, user string, forUpdate bool) (accountRow, error) {
	sql := "SELECT " + accountColumns + " FROM accounts WHERE name = $1"
	if forUpdate {
		sql += " FOR UPDATE"
	}
	r, err := scanAccount(q.QueryRow(ctx, sql, user))
	if errors.Is(err, pgx.ErrNoRows) {
		return accountRow{}, nil
	}
	if err != nil {
		return accountRow{}, fmt.Errorf("read account %q: %w", user, err)
	}
	return r, nil
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// lockAccount reads user's row and locks it until tx ends, creating an
// empty one first if there is none, so that two transactions changing a
// new user queue on one row instead of both inserting.
func lockAccount(ctx context.Context, tx pgx.Tx, user string) (accountRow, error) {
	if _, err := tx.Exec(ctx, "INSERT INTO accounts (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", user); err != nil {
		return accountRow{}, fmt.Errorf("create account %q: %w", user, err)
	}
	return loadAccount(ctx, tx, user, true)
}

// saveAccount writes r as user's row (locked by lockAccount).
func saveAccount(ctx context.Context, tx pgx.Tx, user string, r accountRow) error {
	revoked, err := json.Marshal(r.Revoked)
	if err != nil {
		return fmt.Errorf("encode revoked sessions of %q: %w", user, err)
	}
	if r.Revoked == nil {
		revoked = []byte("[]")
	}
	codes := r.BackupCodes
	if codes == nil {
		codes = [][]byte{}
	}
	_, err = tx.Exec(ctx, `UPDATE accounts SET stored = $2, password_hash = $3, totp_secret = $4,
		last_step = $5, backup_codes = $6, must_regenerate = $7, generation = $8,
		pending_secret = $9, pending_expires = $10, revoked = $11 WHERE name = $1`,
		user, r.Stored, r.PasswordHash, r.TOTPSecret, r.LastStep, codes,
		r.MustRegenerate, int64(r.Generation), r.PendingSecret, r.PendingExpires, string(revoked))
	if err != nil {
		return fmt.Errorf("write account %q: %w", user, err)
	}
	return nil
}

// errUnchanged, returned by a change, ends its transaction without writing
// and without an error.
var errUnchanged = errors.New("unchanged")

// testHookLocked, when set by a test, runs after updateAccount has read
// (and locked) the row and before it changes it: a test of a race makes
// the window wide, so that it would fail every time without the lock.
var testHookLocked func()

// updateAccount runs change on user's locked row in one transaction and
// saves the result, unless change returns an error. Saving marks the
// account stored.
func (db *DB) updateAccount(user string, change func(ctx context.Context, tx pgx.Tx, r *accountRow) error) error {
	err := db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		r, err := lockAccount(ctx, tx, user)
		if err != nil {
			return err
		}
		if testHookLocked != nil {
			testHookLocked()
		}
		if err := change(ctx, tx, &r); err != nil {
			return err
		}
		r.Stored = true
		return saveAccount(ctx, tx, user, r)
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// Account implements gateway.Store.
func (db *DB) Account(user string) (gateway.Account, error) {
	ctx, cancel := db.op()
	defer cancel()
	r, err := loadAccount(ctx, db.pool, user, false)
	if err != nil || !r.Stored {
		return gateway.Account{Name: user}, err
	}
	a := gateway.Account{
		Name:           user,
		Stored:         true,
		PasswordHash:   r.PasswordHash,
		LastStep:       r.LastStep,
		BackupCodes:    r.BackupCodes,
		MustRegenerate: r.MustRegenerate,
		Generation:     r.Generation,
	}
	if r.TOTPSecret != nil {
		secret, err := db.keys.Load().Open(secrets.PurposeTOTPSecret, user, r.TOTPSecret)
		if err != nil {
			return gateway.Account{Name: user}, fmt.Errorf("decrypt totp secret of %q: %w", user, err)
		}
		a.TOTPSecret = string(secret)
	}
	return a, nil
}

// seal seals plain for purpose and user under the key the database
// currently uses.
func (db *DB) seal(ctx context.Context, tx pgx.Tx, purpose, user string, plain []byte) ([]byte, error) {
	id, err := currentKey(ctx, tx)
	if err != nil {
		return nil, err
	}
	return db.keys.Load().Seal(id, purpose, user, plain)
}

// reseal re-encrypts every secret in the database under the key with id
// to, and the canary last, all in tx.
func reseal(ctx context.Context, tx pgx.Tx, keys *secrets.Keyring, to secrets.KeyID) error {
	rows, err := tx.Query(ctx, `SELECT name, totp_secret, pending_secret FROM accounts
		WHERE totp_secret IS NOT NULL OR pending_secret IS NOT NULL FOR UPDATE`)
	if err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	type sealedRow struct {
		name          string
		totp, pending []byte
	}
	var list []sealedRow
	for rows.Next() {
		var s sealedRow
		if err := rows.Scan(&s.name, &s.totp, &s.pending); err != nil {
			return fmt.Errorf("list secrets: %w", err)
		}
		list = append(list, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	for _, s := range list {
		if s.totp, err = resealValue(keys, to, secrets.PurposeTOTPSecret, s.name, s.totp); err != nil {
			return fmt.Errorf("re-encrypt totp secret of %q: %w", s.name, err)
		}
		if s.pending, err = resealValue(keys, to, secrets.PurposePendingSecret, s.name, s.pending); err != nil {
			return fmt.Errorf("re-encrypt pending enrollment of %q: %w", s.name, err)
		}
		if _, err := tx.Exec(ctx, "UPDATE accounts SET totp_secret = $2, pending_secret = $3 WHERE name = $1", s.name, s.totp, s.pending); err != nil {
			return fmt.Errorf("write account %q: %w", s.name, err)
		}
	}
	var hashKey, blockKey []byte
	err = tx.QueryRow(ctx, "SELECT hash_key, block_key FROM session_keys WHERE id = 1 FOR UPDATE").Scan(&hashKey, &blockKey)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read session keys: %w", err)
	default:
		if hashKey, err = resealValue(keys, to, secrets.PurposeSessionHash, "", hashKey); err != nil {
			return fmt.Errorf("re-encrypt session hash key: %w", err)
		}
		if blockKey, err = resealValue(keys, to, secrets.PurposeSessionBlock, "", blockKey); err != nil {
			return fmt.Errorf("re-encrypt session block key: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE session_keys SET hash_key = $1, block_key = $2 WHERE id = 1", hashKey, blockKey); err != nil {
			return fmt.Errorf("write session keys: %w", err)
		}
	}
	return writeCanary(ctx, tx, keys, to)
}

// resealValue opens sealed and seals it again under to; nil stays nil.
func resealValue(keys *secrets.Keyring, to secrets.KeyID, purpose, owner string, sealed []byte) ([]byte, error) {
	if sealed == nil {
		return nil, nil
	}
	plain, err := keys.Open(purpose, owner, sealed)
	if err != nil {
		return nil, err
	}
	return keys.Seal(to, purpose, owner, plain)
}

// SessionKeys implements gateway.Store. The first instance to get here
// stores its keys; every other one reads them.
func (db *DB) SessionKeys(generate func() (hashKey, blockKey []byte, err error)) (hashKey, blockKey []byte, err error) {
	err = db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		var h, b []byte
		err := tx.QueryRow(ctx, "SELECT hash_key, block_key FROM session_keys WHERE id = 1").Scan(&h, &b)
		if errors.Is(err, pgx.ErrNoRows) {
			if h, b, err = db.storeSessionKeys(ctx, tx, generate); err != nil {
				return err
			}
		} else if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		keys := db.keys.Load()
		if hashKey, err = keys.Open(secrets.PurposeSessionHash, "", h); err != nil {
			return fmt.Errorf("decrypt session hash key: %w", err)
		}
		if blockKey, err = keys.Open(secrets.PurposeSessionBlock, "", b); err != nil {
			return fmt.Errorf("decrypt session block key: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("session keys: %w", err)
	}
	return hashKey, blockKey, nil
}

// storeSessionKeys inserts generated keys unless another instance did
// first, and returns the sealed keys that are stored.
func (db *DB) storeSessionKeys(ctx context.Context, tx pgx.Tx, generate func() ([]byte, []byte, error)) (h, b []byte, err error) {
	hashKey, blockKey, err := generate()
	if err != nil {
		return nil, nil, fmt.Errorf("generate: %w", err)
	}
	if h, err = db.seal(ctx, tx, secrets.PurposeSessionHash, "", hashKey); err != nil {
		return nil, nil, fmt.Errorf("encrypt session hash key: %w", err)
	}
	if b, err = db.seal(ctx, tx, secrets.PurposeSessionBlock, "", blockKey); err != nil {
		return nil, nil, fmt.Errorf("encrypt session block key: %w", err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO session_keys (id, hash_key, block_key) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING", h, b); err != nil {
		return nil, nil, fmt.Errorf("write: %w", err)
	}
	if err := tx.QueryRow(ctx, "SELECT hash_key, block_key FROM session_keys WHERE id = 1").Scan(&h, &b); err != nil {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	return h, b, nil
}
