package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// The rules of the lockout are gateway's; this file loads the counters
// they work on and saves what they leave, in one transaction per call,
// holding a transaction-scoped advisory lock on each key. Row locks would
// not do: a counter that does not exist yet has no row to lock, and two
// instances would both insert it. Counter transactions send no NOTIFY
// (each would take a cluster-wide lock at commit); no instance caches
// counters.

const counterColumns = "key, window_start, locked_until, failures, in_flight"

func scanCounter(row pgx.Row) (account.Counter, error) {
	var (
		c            account.Counter
		start, until int64
	)
	if err := row.Scan(&c.Key, &start, &until, &c.Failures, &c.InFlight); err != nil {
		return c, err
	}
	c.WindowStart, c.LockedUntil = secrets.FromUnixNano(start), secrets.FromUnixNano(until)
	return c, nil
}

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

// UpdateCounters implements account.Store: one transaction in two round
// trips, the first taking the locks and reading, the second writing and
// committing. Attempts on one key queue for its lock, so the fewer round
// trips a transaction holds it, the more failures per second one key
// records.
func (db *DB) UpdateCounters(keys []string, fn func(map[string]*account.Counter) error) error {
	ctx, cancel := db.op()
	defer cancel()
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("update counters: %w", err)
	}
	// A connection left in a transaction by an error below is not reused:
	// the pool closes any connection that is not idle when released.
	defer conn.Release()

	cs := make(map[string]*account.Counter, len(keys))
	for _, k := range keys {
		cs[k] = &account.Counter{Key: k}
	}
	read := &pgx.Batch{}
	read.Queue("BEGIN")
	// A counter transaction does not wait for its commit to reach the
	// disk: with a flush each, a flood's failures would be bounded by the
	// disk's flushes per second. A crash of the database server may forget
	// the last fraction of a second of failures (at most three
	// wal_writer_delay); it never leaves a counter half written.
	read.Queue("SET LOCAL synchronous_commit TO OFF")
	for _, id := range db.counterLockIDs(keys) {
		read.Queue("SELECT pg_advisory_xact_lock($1)", id)
	}
	read.Queue("SELECT "+counterColumns+" FROM counters WHERE key = ANY($1)", keys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			c, err := scanCounter(rows)
			if err != nil {
				return err
			}
			*cs[c.Key] = c
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, read).Close(); err != nil {
		rollback(conn)
		return fmt.Errorf("update counters: lock and read: %w", err)
	}
	if err := fn(cs); err != nil {
		rollback(conn)
		return err
	}
	write := counterWrites(keys, cs)
	write.Queue("COMMIT")
	if err := conn.SendBatch(ctx, write).Close(); err != nil {
		rollback(conn)
		return fmt.Errorf("update counters: write: %w", err)
	}
	return nil
}

// rollback ends the transaction on conn, if it still can.
func rollback(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = conn.Exec(ctx, "ROLLBACK")
}

// counterWrites saves the counters under keys, deleting the empty ones.
func counterWrites(keys []string, cs map[string]*account.Counter) *pgx.Batch {
	batch := &pgx.Batch{}
	for _, k := range slices.Compact(slices.Sorted(slices.Values(keys))) {
		c := *cs[k]
		if c.Empty() {
			batch.Queue("DELETE FROM counters WHERE key = $1", k)
			continue
		}
		batch.Queue(`INSERT INTO counters (key, window_start, locked_until, failures, in_flight)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (key) DO UPDATE SET window_start = EXCLUDED.window_start,
				locked_until = EXCLUDED.locked_until, failures = EXCLUDED.failures, in_flight = EXCLUDED.in_flight`,
			k, secrets.UnixNano(c.WindowStart), secrets.UnixNano(c.LockedUntil), c.Failures, c.InFlight)
	}
	return batch
}

// Counters implements account.Store.
func (db *DB) Counters() ([]account.Counter, error) {
	ctx, cancel := db.op()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT "+counterColumns+" FROM counters ORDER BY key")
	if err != nil {
		return nil, fmt.Errorf("list counters: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (account.Counter, error) { return scanCounter(row) })
	if err != nil {
		return nil, fmt.Errorf("list counters: %w", err)
	}
	return list, nil
}

// Counter implements account.Store.
func (db *DB) Counter(key string) (account.Counter, error) {
	ctx, cancel := db.op()
	defer cancel()
	c, err := scanCounter(db.pool.QueryRow(ctx, "SELECT "+counterColumns+" FROM counters WHERE key = $1", key))
	if errors.Is(err, pgx.ErrNoRows) {
		return account.Counter{Key: key}, nil
	}
	if err != nil {
		return account.Counter{}, fmt.Errorf("read counter %q: %w", key, err)
	}
	return c, nil
}

// errPruning ends a pruning transaction that found another instance
// pruning.
var errPruning = errors.New("another instance is pruning")

// PruneCounters implements account.Store. One instance prunes at a time:
// while another holds the pruning lock it deletes nothing and returns 0.
// The counters it deletes are locked as UpdateCounters locks them, so a
// counter that changes meanwhile is not deleted from under its update.
func (db *DB) PruneCounters(drop func(account.Counter) bool) (int, error) {
	var n int
	err := db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		n = 0
		var mine bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1, hashtext($2))", lockPruning, db.schema).Scan(&mine); err != nil {
			return fmt.Errorf("take the pruning lock: %w", err)
		}
		if !mine {
			return errPruning
		}
		rows, err := tx.Query(ctx, "SELECT "+counterColumns+" FROM counters")
		if err != nil {
			return err
		}
		all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (account.Counter, error) { return scanCounter(row) })
		if err != nil {
			return err
		}
		var over []string
		for _, c := range all {
			if drop(c) {
				over = append(over, c.Key)
			}
		}
		if len(over) == 0 {
			return nil
		}
		batch := &pgx.Batch{}
		for _, id := range db.counterLockIDs(over) {
			batch.Queue("SELECT pg_advisory_xact_lock($1)", id)
		}
		batch.Queue("SELECT "+counterColumns+" FROM counters WHERE key = ANY($1)", over).Query(func(rows pgx.Rows) error {
			over = over[:0]
			for rows.Next() {
				c, err := scanCounter(rows)
				if err != nil {
					return err
				}
				if drop(c) { // as it stands now that it is locked
					over = append(over, c.Key)
				}
			}
			return rows.Err()
		})
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM counters WHERE key = ANY($1)", over)
		n = int(tag.RowsAffected())
		return err
	})
	if errors.Is(err, errPruning) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("prune counters: %w", err)
	}
	return n, nil
}
