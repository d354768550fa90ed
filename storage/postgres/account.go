package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// accountRow is one row of the accounts table, secrets still sealed. A
// row with Stored false keeps only the generation of a removed user, so
// that sessions of the name stay ended if it is added again.
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
	PendingSession uint64
	Revoked        []account.Revocation
	Recovery       uint64 // account.Account.RecoverySession
	ConfigUser     bool
	// Passkeys are public keys: they need no sealing.
	Passkeys        []account.Passkey
	SpentChallenges []account.SpentChallenge
	AppPasswords    []account.AppPassword
	Sessions        []account.SessionRecord
	Devices         []account.RememberedDevice
}

const accountColumns = `stored, password_hash, totp_secret, last_step, backup_codes,
	must_regenerate, generation, pending_secret, pending_expires, revoked,
	pending_session, recovery_session, config_user, app_passwords, app_password_use,
	sessions, devices, passkeys, spent_challenges`

func scanAccount(row pgx.Row) (accountRow, error) {
	var (
		r                   accountRow
		gen, pend, recovery int64
		revoked             []byte
		apps, appUse        []byte
		sessions, devices   []byte
		passkeys, spent     []byte
	)
	err := row.Scan(&r.Stored, &r.PasswordHash, &r.TOTPSecret, &r.LastStep, &r.BackupCodes,
		&r.MustRegenerate, &gen, &r.PendingSecret, &r.PendingExpires, &revoked,
		&pend, &recovery, &r.ConfigUser, &apps, &appUse, &sessions, &devices, &passkeys, &spent)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(passkeys, &r.Passkeys); err != nil {
		return r, fmt.Errorf("decode passkeys: %w", err)
	}
	if err := json.Unmarshal(spent, &r.SpentChallenges); err != nil {
		return r, fmt.Errorf("decode spent passkey challenges: %w", err)
	}
	if len(r.Passkeys) == 0 {
		r.Passkeys = nil
	}
	if len(r.SpentChallenges) == 0 {
		r.SpentChallenges = nil
	}
	r.Generation, r.PendingSession, r.Recovery = uint64(gen), uint64(pend), uint64(recovery)
	if err := json.Unmarshal(revoked, &r.Revoked); err != nil {
		return r, fmt.Errorf("decode revoked sessions: %w", err)
	}
	if r.AppPasswords, err = joinAppPasswords(apps, appUse); err != nil {
		return r, err
	}
	if err := json.Unmarshal(sessions, &r.Sessions); err != nil {
		return r, fmt.Errorf("decode sessions: %w", err)
	}
	if err := json.Unmarshal(devices, &r.Devices); err != nil {
		return r, fmt.Errorf("decode remembered devices: %w", err)
	}
	if len(r.Sessions) == 0 {
		r.Sessions = nil
	}
	if len(r.Devices) == 0 {
		r.Devices = nil
	}
	if len(r.BackupCodes) == 0 {
		r.BackupCodes = nil
	}
	return r, nil
}

// sealed is what r keeps of the account's secrets.
func (r accountRow) sealed() secrets.Sealed {
	return secrets.Sealed{TOTP: r.TOTPSecret, Pending: r.PendingSecret}
}

// plain is r in the form the gateway works on, without its secrets.
func plain(user string, r accountRow) account.Account {
	if !r.Stored {
		return account.Account{Name: user, Generation: r.Generation}
	}
	a := account.Account{
		Name:            user,
		PasswordHash:    r.PasswordHash,
		LastStep:        r.LastStep,
		BackupCodes:     r.BackupCodes,
		MustRegenerate:  r.MustRegenerate,
		Generation:      r.Generation,
		Revoked:         r.Revoked,
		RecoverySession: r.Recovery,
		AppPasswords:    r.AppPasswords,
		ConfigUser:      r.ConfigUser,
		Sessions:        r.Sessions,
		Devices:         r.Devices,
		Passkeys:        r.Passkeys,
		SpentChallenges: r.SpentChallenges,
		Stored:          true,
	}
	if r.PendingSecret != nil {
		a.Pending = &account.Enrollment{Expires: time.Unix(0, r.PendingExpires), Session: r.PendingSession}
	}
	return a
}

// withheld is r with its secrets withheld (see account.Store.Accounts): it
// decrypts nothing.
func withheld(user string, r accountRow) account.Account {
	a := plain(user, r)
	if r.Stored {
		r.sealed().Withhold(&a)
	}
	return a
}

// account decrypts r into the form the gateway works on.
func (db *DB) account(user string, r accountRow) (account.Account, error) {
	a := plain(user, r)
	if !r.Stored {
		return a, nil
	}
	err := db.keys.Load().OpenAccount(&a, r.sealed())
	return a, err
}

// row seals a into the stored form. Secrets a did not change keep their
// ciphertext from old, the row a was loaded from.
func (db *DB) row(ctx context.Context, tx pgx.Tx, a, was account.Account, old accountRow) (accountRow, error) {
	if a.Removed {
		return accountRow{Generation: a.Generation}, nil
	}
	r := accountRow{
		Stored:          true,
		PasswordHash:    a.PasswordHash,
		LastStep:        a.LastStep,
		BackupCodes:     a.BackupCodes,
		MustRegenerate:  a.MustRegenerate,
		Generation:      a.Generation,
		Revoked:         a.Revoked,
		Recovery:        a.RecoverySession,
		ConfigUser:      a.ConfigUser,
		Passkeys:        a.Passkeys,
		SpentChallenges: a.SpentChallenges,
		AppPasswords:    a.AppPasswords,
		Sessions:        a.Sessions,
		Devices:         a.Devices,
	}
	s, err := db.keys.Load().SealAccount(a, was, old.sealed(), func() (secrets.KeyID, error) { return currentKey(ctx, tx) })
	if err != nil {
		return r, err
	}
	r.TOTPSecret, r.PendingSecret = s.TOTP, s.Pending
	if p := a.Pending; p != nil {
		r.PendingExpires, r.PendingSession = p.Expires.UnixNano(), p.Session
	}
	return r, nil
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
	revoked, err := jsonList(r.Revoked)
	if err != nil {
		return fmt.Errorf("encode revoked sessions of %q: %w", user, err)
	}
	sessions, err := jsonList(r.Sessions)
	if err != nil {
		return fmt.Errorf("encode sessions of %q: %w", user, err)
	}
	devices, err := jsonList(r.Devices)
	if err != nil {
		return fmt.Errorf("encode remembered devices of %q: %w", user, err)
	}
	passkeys, err := jsonList(r.Passkeys)
	if err != nil {
		return fmt.Errorf("encode passkeys of %q: %w", user, err)
	}
	spent, err := jsonList(r.SpentChallenges)
	if err != nil {
		return fmt.Errorf("encode spent passkey challenges of %q: %w", user, err)
	}
	apps, appUse, err := splitAppPasswords(r.AppPasswords)
	if err != nil {
		return fmt.Errorf("%w of %q", err, user)
	}
	codes := r.BackupCodes
	if codes == nil {
		codes = [][]byte{}
	}
	_, err = tx.Exec(ctx, `UPDATE accounts SET stored = $2, password_hash = $3, totp_secret = $4,
		last_step = $5, backup_codes = $6, must_regenerate = $7, generation = $8,
		pending_secret = $9, pending_expires = $10, revoked = $11,
		pending_session = $12, recovery_session = $13, config_user = $14,
		app_passwords = $15, app_password_use = $16, sessions = $17, devices = $18,
		passkeys = $19, spent_challenges = $20 WHERE name = $1`,
		user, r.Stored, r.PasswordHash, r.TOTPSecret, r.LastStep, codes,
		r.MustRegenerate, int64(r.Generation), r.PendingSecret, r.PendingExpires, revoked,
		int64(r.PendingSession), int64(r.Recovery), r.ConfigUser, string(apps), string(appUse), sessions, devices, passkeys, spent)
	if err != nil {
		return fmt.Errorf("write account %q: %w", user, err)
	}
	return nil
}

// UpdateAccount implements account.Store: one transaction holding the
// user's row (SELECT … FOR UPDATE), so updates of one user from every
// instance queue, and the trigger tells every instance once it commits.
func (db *DB) UpdateAccount(user string, fn func(*account.Account) error) error {
	var (
		fnErr   error
		changed bool // what a session check reads of the account
	)
	err := db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		old, err := lockAccount(ctx, tx, user)
		if err != nil {
			return err
		}
		if db.testHookLocked != nil {
			db.testHookLocked()
		}
		was, err := db.account(user, old)
		if err != nil {
			return err
		}
		var a account.Account
		if a, fnErr = account.Apply(user, was, fn); fnErr != nil {
			return fnErr
		}
		changed = account.SessionStateOf(a) != account.SessionStateOf(was)
		r, err := db.row(ctx, tx, a, was, old)
		if err != nil {
			return err
		}
		if err := saveAccount(ctx, tx, user, r); err != nil {
			return err
		}
		return countModels(ctx, tx, modelOf(old), modelOf(r))
	})
	if fnErr != nil && err == fnErr {
		return fnErr // rolled back: nothing changed
	}
	// This instance sees its own change at once, not when the database's
	// notification comes back. After an error, whether the commit
	// happened is not known.
	if changed || err != nil {
		db.cache.forget(user)
	}
	if err != nil {
		return fmt.Errorf("update account %q: %w", user, err)
	}
	return nil
}

// Account implements account.Store.
func (db *DB) Account(user string) (account.Account, error) {
	ctx, cancel := db.op()
	defer cancel()
	r, err := loadAccount(ctx, db.pool, user, false)
	if err != nil {
		return account.Account{Name: user}, err
	}
	a, err := db.account(user, r)
	if err != nil {
		return account.Account{Name: user}, fmt.Errorf("read account %q: %w", user, err)
	}
	return a, nil
}

// Accounts implements account.Store.
func (db *DB) Accounts() ([]account.Account, error) {
	return db.accounts("SELECT name, " + accountColumns + " FROM accounts WHERE stored ORDER BY name")
}

// AccountsAfter implements account.Store.
func (db *DB) AccountsAfter(after string, limit int) ([]account.Account, error) {
	if limit <= 0 {
		return nil, nil
	}
	return db.accounts("SELECT name, "+accountColumns+" FROM accounts WHERE stored AND name > $1 ORDER BY name LIMIT $2", after, limit)
}

// accounts runs a query of name and accountColumns and returns its rows
// with their secrets withheld.
func (db *DB) accounts(sql string, args ...any) ([]account.Account, error) {
	ctx, cancel := db.op()
	defer cancel()
	rows, err := db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var list []account.Account
	for rows.Next() {
		var name string
		r, err := scanAccount(prefixed{rows, &name})
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		list = append(list, withheld(name, r))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return list, nil
}

// prefixed scans one column into first, then the rest as scanAccount asks.
type prefixed struct {
	row   pgx.Row
	first *string
}

func (p prefixed) Scan(dest ...any) error { return p.row.Scan(append([]any{p.first}, dest...)...) }

// jsonList encodes a list for a jsonb column, an empty one as [].
func jsonList[T any](list []T) (string, error) {
	if len(list) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(list)
	return string(b), err
}
