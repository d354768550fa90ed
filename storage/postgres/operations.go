package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/storage"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// This file holds what operators do to the database, through the admin API
// or the `caddy totp-auth` commands, with the same meaning as the bbolt
// store's functions of the same names. Every change goes through the
// accounts table, whose trigger tells every running instance at once.

func canonical(user string) (string, error) {
	name := gateway.CanonicalUser(user)
	if name == "" {
		return "", errors.New("user name is empty")
	}
	return name, nil
}

// SetPassword stores hash as user's password, creating a user managed in
// the database if there is none. It does not end the user's sessions.
func (db *DB) SetPassword(user string, hash []byte) error {
	name, err := canonical(user)
	if err != nil {
		return err
	}
	if len(hash) == 0 {
		return fmt.Errorf("set password of %q: empty password hash", name)
	}
	err = db.updateAccount(name, func(_ context.Context, _ pgx.Tx, r *accountRow) error {
		r.PasswordHash = bytes.Clone(hash)
		return nil
	})
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	return nil
}

// RemoveAccount deletes everything stored about user (gateway.ErrNotFound
// if nothing is) and ends the user's sessions: only the generation is
// kept, one higher, so a user added again does not inherit sessions.
func (db *DB) RemoveAccount(user string) error {
	name, err := canonical(user)
	if err != nil {
		return err
	}
	err = db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		r, err := loadAccount(ctx, tx, name, true)
		if err != nil {
			return err
		}
		if !r.Stored {
			return gateway.ErrNotFound
		}
		return saveAccount(ctx, tx, name, accountRow{Generation: r.Generation + 1})
	})
	return wrapUnlessSentinel(err, "remove account %q", name)
}

// Accounts lists every stored account in name order.
func (db *DB) Accounts() ([]storage.AccountSummary, error) {
	ctx, cancel := db.op()
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT name, password_hash IS NOT NULL, totp_secret IS NOT NULL,
		pending_secret IS NOT NULL, cardinality(backup_codes), must_regenerate, generation
		FROM accounts WHERE stored ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var list []storage.AccountSummary
	for rows.Next() {
		var (
			a   storage.AccountSummary
			gen int64
		)
		if err := rows.Scan(&a.Name, &a.HasPassword, &a.TOTPEnabled, &a.EnrollmentPending, &a.BackupCodesLeft, &a.MustRegenerate, &gen); err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		a.Generation = uint64(gen)
		list = append(list, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return list, nil
}

// ResetTOTP removes user's TOTP secret, backup codes and pending enrollment
// and ends all of the user's sessions (gateway.ErrNotFound if nothing is
// stored).
func (db *DB) ResetTOTP(user string) error {
	name, err := canonical(user)
	if err != nil {
		return err
	}
	err = db.updateAccount(name, func(_ context.Context, _ pgx.Tx, r *accountRow) error {
		if !r.Stored {
			return gateway.ErrNotFound
		}
		disable(r)
		r.Generation++
		return nil
	})
	return wrapUnlessSentinel(err, "reset totp of %q", name)
}

func scanCounter(row pgx.Row) (gateway.Counter, error) {
	var (
		c            gateway.Counter
		start, until int64
	)
	if err := row.Scan(&c.Key, &start, &until, &c.Failures, &c.InFlight); err != nil {
		return c, err
	}
	c.WindowStart, c.LockedUntil = fromUnixNano(start), fromUnixNano(until)
	return c, nil
}

const counterColumns = "key, window_start, locked_until, failures, in_flight"

// Counter returns the failure counter under key as it is stored.
func (db *DB) Counter(key string) (gateway.Counter, error) {
	ctx, cancel := db.op()
	defer cancel()
	c, err := scanCounter(db.pool.QueryRow(ctx, "SELECT "+counterColumns+" FROM counters WHERE key = $1", key))
	if errors.Is(err, pgx.ErrNoRows) {
		return gateway.Counter{Key: key}, nil
	}
	if err != nil {
		return gateway.Counter{}, fmt.Errorf("read counter %q: %w", key, err)
	}
	return c, nil
}

// LockState returns the lock on key at now, or nil if key is not locked.
func (db *DB) LockState(key string, now time.Time) (*gateway.Lock, error) {
	c, err := db.Counter(key)
	if err != nil || !c.Locked(now) {
		return nil, err
	}
	return &gateway.Lock{Key: key, RetryAfter: c.LockedUntil.Sub(now)}, nil
}

// Locks returns every counter that refuses attempts at now.
func (db *DB) Locks(now time.Time) ([]gateway.Lock, error) {
	ctx, cancel := db.op()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT "+counterColumns+" FROM counters WHERE locked_until > $1", now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	defer rows.Close()
	var locks []gateway.Lock
	for rows.Next() {
		c, err := scanCounter(rows)
		if err != nil {
			return nil, fmt.Errorf("list locks: %w", err)
		}
		if c.Locked(now) {
			locks = append(locks, gateway.Lock{Key: c.Key, RetryAfter: c.LockedUntil.Sub(now)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	return locks, nil
}

// Unlock forgets the failure counter under key.
func (db *DB) Unlock(key string) error {
	err := db.updateCounters([]string{key}, func(func(string) (gateway.Counter, error)) ([]gateway.Counter, error) {
		return []gateway.Counter{{Key: key}}, nil // empty: deleted
	})
	if err != nil {
		return fmt.Errorf("unlock %q: %w", key, err)
	}
	return nil
}

// PruneCounters deletes the counters whose window and lock are both over
// at now, and returns how many it deleted. One instance prunes at a time:
// while another holds the pruning lock, it returns 0 at once.
func (db *DB) PruneCounters(now time.Time, window time.Duration) (int, error) {
	var n int
	err := db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		var mine bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1, hashtext($2))", lockPruning, db.schema).Scan(&mine); err != nil {
			return err
		}
		if !mine {
			return nil
		}
		tag, err := tx.Exec(ctx, "DELETE FROM counters WHERE locked_until <= $1 AND window_start + $2 <= $1",
			now.UnixNano(), window.Nanoseconds())
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune counters: %w", err)
	}
	return n, nil
}

// RotateKey re-encrypts every secret under key in one transaction. Every
// instance must accept key (as an old key at least) before this runs, or
// it can no longer open what is re-encrypted.
func (db *DB) RotateKey(key secrets.Key) error {
	keys, err := db.keys.Load().With(key)
	if err != nil {
		return fmt.Errorf("rotate to %s: %w", key, err)
	}
	db.keys.Store(keys)
	err = db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", lockRotation, db.schema); err != nil {
			return err
		}
		return reseal(ctx, tx, keys, key.KeyID())
	})
	if err != nil {
		return fmt.Errorf("rotate to %s: %w", key, err)
	}
	return nil
}

// Backup is not offered for PostgreSQL: its own tools do it better.
func (db *DB) Backup(io.Writer) (int64, error) {
	return 0, errors.New("a PostgreSQL database is backed up with PostgreSQL's tools: run `pg_dump --schema=" + db.schema + "` against it")
}
