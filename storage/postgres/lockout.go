package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/gateway"
)

// The rules of the lockout are gateway's (gateway.TakeSlots and its
// siblings); this file loads the counters they work on and saves what they
// return, in one transaction per call, holding a transaction-scoped
// advisory lock on each key. Row locks would not do: a counter that does
// not exist yet has no row to lock, and two instances would both insert it.
// Counter transactions send no NOTIFY (each would take a cluster-wide lock
// at commit); no instance caches counters.

// counterLockIDs returns the advisory lock ids of keys, sorted and without
// duplicates, so that transactions naming the same keys take their locks in
// the same order and never deadlock.
func (db *DB) counterLockIDs(keys []string) []int64 {
	ids := make([]int64, 0, len(keys))
	for _, k := range keys {
		h := fnv.New64a()
		h.Write([]byte("totp_auth counter\x00" + db.schema + "\x00" + k))
		ids = append(ids, int64(h.Sum64()))
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// updateCounters locks keys, loads their counters, runs change over them
// and saves the counters change returns (deleting the empty ones), in one
// transaction.
func (db *DB) updateCounters(keys []string, change func(load func(string) (gateway.Counter, error)) ([]gateway.Counter, error)) error {
	return db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		batch := &pgx.Batch{}
		for _, id := range db.counterLockIDs(keys) {
			batch.Queue("SELECT pg_advisory_xact_lock($1)", id)
		}
		loaded := make(map[string]gateway.Counter, len(keys))
		batch.Queue("SELECT "+counterColumns+" FROM counters WHERE key = ANY($1)", keys).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				c, err := scanCounter(rows)
				if err != nil {
					return err
				}
				loaded[c.Key] = c
			}
			return rows.Err()
		})
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("lock and read counters: %w", err)
		}
		save, err := change(func(key string) (gateway.Counter, error) {
			if c, ok := loaded[key]; ok {
				return c, nil
			}
			return gateway.Counter{Key: key}, nil
		})
		if err != nil || len(save) == 0 {
			return err
		}
		return putCounters(ctx, tx, save)
	})
}

func putCounters(ctx context.Context, tx pgx.Tx, cs []gateway.Counter) error {
	batch := &pgx.Batch{}
	for _, c := range cs {
		if c.Empty() {
			batch.Queue("DELETE FROM counters WHERE key = $1", c.Key)
			continue
		}
		batch.Queue(`INSERT INTO counters (key, window_start, locked_until, failures, in_flight)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (key) DO UPDATE SET window_start = EXCLUDED.window_start,
				locked_until = EXCLUDED.locked_until, failures = EXCLUDED.failures, in_flight = EXCLUDED.in_flight`,
			c.Key, unixNano(c.WindowStart), unixNano(c.LockedUntil), c.Failures, c.InFlight)
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("write counters: %w", err)
	}
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// instant drops what a stored time cannot keep (monotonic reading,
// location), so times handed out compare equal to the stored ones.
func instant(t time.Time) time.Time { return time.Unix(0, t.UnixNano()) }

func limitKeys(limits []gateway.Limit) []string {
	keys := make([]string, len(limits))
	for i, l := range limits {
		keys[i] = l.Key
	}
	return keys
}

// TakeAttempt implements gateway.Store.
func (db *DB) TakeAttempt(now time.Time, window time.Duration, limits []gateway.Limit) (gateway.Attempt, *gateway.Lock, error) {
	if err := gateway.CheckLimits(window, limits); err != nil {
		return gateway.Attempt{}, nil, err
	}
	now = instant(now)
	var (
		attempt gateway.Attempt
		lock    *gateway.Lock
	)
	err := db.updateCounters(limitKeys(limits), func(load func(string) (gateway.Counter, error)) ([]gateway.Counter, error) {
		var (
			save []gateway.Counter
			err  error
		)
		attempt, lock, save, err = gateway.TakeSlots(now, window, limits, load)
		return save, err
	})
	if err != nil {
		return gateway.Attempt{}, nil, fmt.Errorf("take attempt: %w", err)
	}
	return attempt, lock, nil
}

// ReleaseAttempt implements gateway.Store.
func (db *DB) ReleaseAttempt(a gateway.Attempt) error {
	if err := gateway.CheckAttempt(a); err != nil {
		return err
	}
	err := db.updateCounters(limitKeys(a.Limits), func(load func(string) (gateway.Counter, error)) ([]gateway.Counter, error) {
		return gateway.ReleaseSlots(a, load)
	})
	if err != nil {
		return fmt.Errorf("release attempt: %w", err)
	}
	return nil
}

// FailAttempt implements gateway.Store.
func (db *DB) FailAttempt(a gateway.Attempt, now time.Time, window time.Duration) ([]gateway.Lock, error) {
	if err := gateway.CheckAttempt(a); err != nil {
		return nil, err
	}
	if err := gateway.CheckLimits(window, a.Limits); err != nil {
		return nil, err
	}
	now = instant(now)
	var locks []gateway.Lock
	err := db.updateCounters(limitKeys(a.Limits), func(load func(string) (gateway.Counter, error)) ([]gateway.Counter, error) {
		var (
			save []gateway.Counter
			err  error
		)
		locks, save, err = gateway.FailSlots(a, now, window, load)
		return save, err
	})
	if err != nil {
		return nil, fmt.Errorf("record failed attempt: %w", err)
	}
	return locks, nil
}

// ResetFailures implements gateway.Store.
func (db *DB) ResetFailures(key string) error {
	err := db.updateCounters([]string{key}, func(load func(string) (gateway.Counter, error)) ([]gateway.Counter, error) {
		c, err := load(key)
		if err != nil {
			return nil, err
		}
		return []gateway.Counter{c.WithoutFailures()}, nil
	})
	if err != nil {
		return fmt.Errorf("reset failures of %q: %w", key, err)
	}
	return nil
}
