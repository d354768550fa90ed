package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/totp-auth/totp_auth/gateway"
)

// busyRetry is what a refusal says when every slot of a counter is held by
// an attempt still being evaluated: those end within seconds, so asking the
// client to wait for the whole window would overstate it.
const busyRetry = time.Second

// Counter is one failure counter of the lockout, as stored under its key.
// The rules are the same as in internal/memstore; internal/storetest holds
// both to them.
type Counter struct {
	// Key is the counter's name, as the gateway chose it.
	Key string
	// WindowStart is when the current counting window began: at the first
	// attempt still counted. Zero if there is none.
	WindowStart time.Time
	// Failures is how many failures the window has counted.
	Failures int
	// InFlight is how many slots attempts hold while being evaluated.
	InFlight int
	// LockedUntil is when the lock ends; zero if the counter never locked.
	LockedUntil time.Time
}

// Locked reports whether the counter refuses every attempt at now.
func (c Counter) Locked(now time.Time) bool { return now.Before(c.LockedUntil) }

// at returns c as it stands at now: once its window or its lock is over,
// a counter starts afresh.
func (c Counter) at(now time.Time, window time.Duration) Counter {
	fresh := Counter{Key: c.Key}
	if !c.LockedUntil.IsZero() {
		if now.Before(c.LockedUntil) {
			return c
		}
		return fresh
	}
	if c.WindowStart.IsZero() || !now.Before(c.WindowStart.Add(window)) {
		return fresh
	}
	return c
}

// refusal is how long c, as it stands at now, refuses another attempt; 0
// if it has a free slot.
func (c Counter) refusal(now time.Time, window time.Duration, max int) time.Duration {
	end := c.WindowStart.Add(window)
	switch {
	case now.Before(c.LockedUntil):
		return c.LockedUntil.Sub(now)
	case c.Failures >= max: // Max was lowered since the failures were counted
		return end.Sub(now)
	case c.Failures+c.InFlight >= max:
		return min(busyRetry, end.Sub(now))
	}
	return 0
}

func (c Counter) empty() bool {
	return c.Failures == 0 && c.InFlight == 0 && c.LockedUntil.IsZero()
}

// Counters are stored as 24 bytes: window start and lock end in Unix
// nanoseconds (0 for none), then failures and slots in flight, all big endian.
const counterValueSize = 24

func encodeCounter(c Counter) []byte {
	v := make([]byte, 0, counterValueSize)
	v = binary.BigEndian.AppendUint64(v, uint64(unixNano(c.WindowStart)))
	v = binary.BigEndian.AppendUint64(v, uint64(unixNano(c.LockedUntil)))
	v = binary.BigEndian.AppendUint32(v, uint32(c.Failures))
	return binary.BigEndian.AppendUint32(v, uint32(c.InFlight))
}

func decodeCounter(key string, v []byte) (Counter, error) {
	if len(v) != counterValueSize {
		return Counter{}, fmt.Errorf("counter %q is %d bytes, want %d", key, len(v), counterValueSize)
	}
	return Counter{
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

func getCounter(b *bolt.Bucket, key string) (Counter, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return Counter{Key: key}, nil
	}
	return decodeCounter(key, v)
}

func putCounter(b *bolt.Bucket, c Counter) error {
	var err error
	if c.empty() {
		err = b.Delete([]byte(c.Key))
	} else {
		err = b.Put([]byte(c.Key), encodeCounter(c))
	}
	if err != nil {
		return fmt.Errorf("write counter %q: %w", c.Key, err)
	}
	return nil
}

var errBadAttempt = errors.New("attempt has a different number of limits and window starts")

// TakeAttempt implements gateway.Store. It runs in a bbolt batch, so that
// a flood of attempts shares fsyncs instead of queueing for one each.
func (db *DB) TakeAttempt(now time.Time, window time.Duration, limits []gateway.Limit) (gateway.Attempt, *gateway.Lock, error) {
	if err := checkLimits(window, limits); err != nil {
		return gateway.Attempt{}, nil, err
	}
	now = instant(now)
	var (
		attempt gateway.Attempt
		lock    *gateway.Lock
	)
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		// Batch may run this more than once: set the results, never add to them.
		attempt, lock = gateway.Attempt{}, nil
		b := tx.Bucket(bucketCounters)
		taken := make(map[string]Counter, len(limits))
		starts := make([]time.Time, len(limits))
		for i, l := range limits {
			c, ok := taken[l.Key]
			if !ok {
				stored, err := getCounter(b, l.Key)
				if err != nil {
					return err
				}
				c = stored.at(now, window)
			}
			if wait := c.refusal(now, window, l.Max); wait > 0 {
				if lock == nil || wait > lock.RetryAfter {
					lock = &gateway.Lock{Key: l.Key, RetryAfter: wait}
				}
				continue
			}
			if c.Failures == 0 && c.InFlight == 0 {
				// The window counts from the first attempt still counted.
				c.WindowStart = now
			}
			c.InFlight++
			taken[l.Key] = c
			starts[i] = c.WindowStart
		}
		if lock != nil {
			return nil // refused: nothing is written anywhere
		}
		for _, c := range taken {
			if err := putCounter(b, c); err != nil {
				return err
			}
		}
		attempt = gateway.Attempt{Limits: append([]gateway.Limit(nil), limits...), WindowStarts: starts}
		return nil
	})
	if err != nil {
		return gateway.Attempt{}, nil, fmt.Errorf("take attempt: %w", err)
	}
	return attempt, lock, nil
}

// ReleaseAttempt implements gateway.Store.
func (db *DB) ReleaseAttempt(a gateway.Attempt) error {
	if len(a.Limits) != len(a.WindowStarts) {
		return errBadAttempt
	}
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		for i, l := range a.Limits {
			c, err := getCounter(b, l.Key)
			if err != nil {
				return err
			}
			if c.InFlight == 0 || unixNano(c.WindowStart) != unixNano(a.WindowStarts[i]) {
				continue // its window is over: the slot went with it
			}
			c.InFlight--
			if err := putCounter(b, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release attempt: %w", err)
	}
	return nil
}

// FailAttempt implements gateway.Store.
func (db *DB) FailAttempt(a gateway.Attempt, now time.Time, window time.Duration) ([]gateway.Lock, error) {
	if len(a.Limits) != len(a.WindowStarts) {
		return nil, errBadAttempt
	}
	if err := checkLimits(window, a.Limits); err != nil {
		return nil, err
	}
	now = instant(now)
	var locks []gateway.Lock
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		locks = nil // Batch may run this more than once
		b := tx.Bucket(bucketCounters)
		for i, l := range a.Limits {
			stored, err := getCounter(b, l.Key)
			if err != nil {
				return err
			}
			c := stored.at(now, window)
			if c.InFlight > 0 && unixNano(c.WindowStart) == unixNano(a.WindowStarts[i]) {
				c.InFlight--
			}
			if c.WindowStart.IsZero() {
				c.WindowStart = now
			}
			c.Failures++
			if c.Failures >= l.Max && !c.Locked(now) {
				c.LockedUntil = now.Add(window)
				locks = append(locks, gateway.Lock{Key: l.Key, RetryAfter: window})
			}
			if err := putCounter(b, c); err != nil {
				return err
			}
		}
		return nil
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
		// Slots still in flight stay taken, so their release still matches.
		c.Failures = 0
		c.LockedUntil = time.Time{}
		return putCounter(b, c)
	})
	if err != nil {
		return fmt.Errorf("reset failures of %q: %w", key, err)
	}
	return nil
}

func checkLimits(window time.Duration, limits []gateway.Limit) error {
	if window <= 0 {
		return fmt.Errorf("lockout window %s is not positive", window)
	}
	for _, l := range limits {
		if l.Max <= 0 {
			return fmt.Errorf("limit %q allows %d failures, want at least 1", l.Key, l.Max)
		}
		if l.Key == "" {
			return errors.New("limit without a key")
		}
	}
	return nil
}
