package storage

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/totp-auth/totp_auth/gateway"
)

// The rules of the lockout are gateway's (gateway.TakeSlots and its
// siblings); this file only loads and saves the counters they work on,
// inside one bbolt transaction per call.

// Counters are stored as 24 bytes: window start and lock end in Unix
// nanoseconds (0 for none), then failures and slots in flight, all big endian.
const counterValueSize = 24

func encodeCounter(c gateway.Counter) []byte {
	v := make([]byte, 0, counterValueSize)
	v = binary.BigEndian.AppendUint64(v, uint64(unixNano(c.WindowStart)))
	v = binary.BigEndian.AppendUint64(v, uint64(unixNano(c.LockedUntil)))
	v = binary.BigEndian.AppendUint32(v, uint32(c.Failures))
	return binary.BigEndian.AppendUint32(v, uint32(c.InFlight))
}

func decodeCounter(key string, v []byte) (gateway.Counter, error) {
	if len(v) != counterValueSize {
		return gateway.Counter{}, fmt.Errorf("counter %q is %d bytes, want %d", key, len(v), counterValueSize)
	}
	return gateway.Counter{
		Key:         key,
		WindowStart: fromUnixNano(int64(binary.BigEndian.Uint64(v[0:]))),
		LockedUntil: fromUnixNano(int64(binary.BigEndian.Uint64(v[8:]))),
		Failures:    int(binary.BigEndian.Uint32(v[16:])),
		InFlight:    int(binary.BigEndian.Uint32(v[20:])),
	}, nil
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

func getCounter(b *bolt.Bucket, key string) (gateway.Counter, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return gateway.Counter{Key: key}, nil
	}
	return decodeCounter(key, v)
}

// counterLoader is how the gateway's transitions read counters from b.
func counterLoader(b *bolt.Bucket) func(key string) (gateway.Counter, error) {
	return func(key string) (gateway.Counter, error) { return getCounter(b, key) }
}

// putCounters writes cs to b, deleting the empty ones.
func putCounters(b *bolt.Bucket, cs []gateway.Counter) error {
	for _, c := range cs {
		var err error
		if c.Empty() {
			err = b.Delete([]byte(c.Key))
		} else {
			err = b.Put([]byte(c.Key), encodeCounter(c))
		}
		if err != nil {
			return fmt.Errorf("write counter %q: %w", c.Key, err)
		}
	}
	return nil
}

// TakeAttempt implements gateway.Store. It runs in a bbolt batch, so that
// a flood of attempts shares fsyncs instead of queueing for one each.
func (db *DB) TakeAttempt(now time.Time, window time.Duration, limits []gateway.Limit) (gateway.Attempt, *gateway.Lock, error) {
	// Checked here too, so that a bad call never fails a whole batch.
	if err := gateway.CheckLimits(window, limits); err != nil {
		return gateway.Attempt{}, nil, err
	}
	now = instant(now)
	// A refusal writes nothing: learn it in a read transaction, so a
	// flood against a locked counter costs no commit and no fsync.
	var lock *gateway.Lock
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		_, lock, _, err = gateway.TakeSlots(now, window, limits, counterLoader(tx.Bucket(bucketCounters)))
		return err
	})
	if err != nil {
		return gateway.Attempt{}, nil, fmt.Errorf("take attempt: %w", err)
	}
	if lock != nil {
		return gateway.Attempt{}, lock, nil
	}
	var attempt gateway.Attempt
	err = db.bolt.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		// Batch may run this more than once: set the results, never add to them.
		var (
			save []gateway.Counter
			err  error
		)
		attempt, lock, save, err = gateway.TakeSlots(now, window, limits, counterLoader(b))
		if err != nil {
			return err
		}
		return putCounters(b, save)
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
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		save, err := gateway.ReleaseSlots(a, counterLoader(b))
		if err != nil {
			return err
		}
		return putCounters(b, save)
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
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		// Batch may run this more than once: set the results, never add to them.
		var (
			save []gateway.Counter
			err  error
		)
		locks, save, err = gateway.FailSlots(a, now, window, counterLoader(b))
		if err != nil {
			return err
		}
		return putCounters(b, save)
	})
	if err != nil {
		return nil, fmt.Errorf("record failed attempt: %w", err)
	}
	return locks, nil
}

// ResetFailures implements gateway.Store.
func (db *DB) ResetFailures(key string) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		c, err := getCounter(b, key)
		if err != nil {
			return err
		}
		return putCounters(b, []gateway.Counter{c.WithoutFailures()})
	})
	if err != nil {
		return fmt.Errorf("reset failures of %q: %w", key, err)
	}
	return nil
}
