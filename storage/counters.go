package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/secrets"
	bolt "go.etcd.io/bbolt"
)

// The rules of the lockout are gateway's; this file only loads and saves
// the counters they work on, inside one bbolt transaction per call.

// Counters are stored as 24 bytes: window start and lock end in Unix
// nanoseconds (0 for none), then failures and slots in flight, all big endian.
const counterValueSize = 24

func encodeCounter(c account.Counter) []byte {
	v := make([]byte, 0, counterValueSize)
	v = binary.BigEndian.AppendUint64(v, uint64(secrets.UnixNano(c.WindowStart)))
	v = binary.BigEndian.AppendUint64(v, uint64(secrets.UnixNano(c.LockedUntil)))
	v = binary.BigEndian.AppendUint32(v, uint32(c.Failures))
	return binary.BigEndian.AppendUint32(v, uint32(c.InFlight))
}

func decodeCounter(key string, v []byte) (account.Counter, error) {
	if len(v) != counterValueSize {
		return account.Counter{}, fmt.Errorf("counter %q is %d bytes, want %d", key, len(v), counterValueSize)
	}
	return account.Counter{
		Key:         key,
		WindowStart: secrets.FromUnixNano(int64(binary.BigEndian.Uint64(v[0:]))),
		LockedUntil: secrets.FromUnixNano(int64(binary.BigEndian.Uint64(v[8:]))),
		Failures:    int(binary.BigEndian.Uint32(v[16:])),
		InFlight:    int(binary.BigEndian.Uint32(v[20:])),
	}, nil
}

func getCounter(b *bolt.Bucket, key string) (account.Counter, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return account.Counter{Key: key}, nil
	}
	return decodeCounter(key, v)
}

// UpdateCounters implements account.Store. fn runs first in a read
// transaction: an update that changes nothing (an attempt refused by a
// lock, say) ends there and writes nothing, so a flood against a locked
// counter costs no commit and no fsync. Otherwise it runs again in a bbolt
// batch, so that a flood of attempts shares fsyncs instead of queueing for
// one each; a batch that fails is run again one function at a time, which
// is why fn must be idempotent.
func (db *DB) UpdateCounters(keys []string, fn func(map[string]*account.Counter) error) error {
	unchanged, err := db.countersUnchanged(keys, fn)
	if err != nil || unchanged {
		return err
	}
	var fnErr error
	err = db.bolt.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		cs := make(map[string]*account.Counter, len(keys))
		loaded := make(map[string][]byte, len(keys))
		for _, k := range keys {
			c, err := getCounter(b, k)
			if err != nil {
				return err
			}
			cs[k] = &c
			loaded[k] = b.Get([]byte(k)) // only compared within tx
		}
		if fnErr = fn(cs); fnErr != nil {
			return fnErr
		}
		for _, k := range keys {
			c := *cs[k]
			c.Key = k
			var err error
			switch v := encodeCounter(c); {
			case c.Empty() && loaded[k] != nil:
				err = b.Delete([]byte(k))
			case !c.Empty() && !bytes.Equal(v, loaded[k]):
				err = b.Put([]byte(k), v)
			}
			if err != nil {
				return fmt.Errorf("write counter %q: %w", k, err)
			}
		}
		return nil
	})
	if fnErr != nil && err == fnErr {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("update counters: %w", err)
	}
	return nil
}

// countersUnchanged runs fn on the counters under keys in a read
// transaction and reports whether it left every one as it was; fn's own
// error is returned unchanged.
func (db *DB) countersUnchanged(keys []string, fn func(map[string]*account.Counter) error) (bool, error) {
	unchanged := false
	var fnErr error
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		loaded := make(map[string]account.Counter, len(keys))
		cs := make(map[string]*account.Counter, len(keys))
		for _, k := range keys {
			c, err := getCounter(b, k)
			if err != nil {
				return err
			}
			loaded[k] = c
			cs[k] = &c
		}
		if fnErr = fn(cs); fnErr != nil {
			return fnErr
		}
		unchanged = true
		for _, k := range keys {
			c := *cs[k]
			c.Key = k
			if !bytes.Equal(encodeCounter(c), encodeCounter(loaded[k])) {
				unchanged = false
			}
		}
		return nil
	})
	if fnErr != nil && err == fnErr {
		return false, fnErr
	}
	if err != nil {
		return false, fmt.Errorf("update counters: %w", err)
	}
	return unchanged, nil
}

// Counters implements account.Store.
func (db *DB) Counters() ([]account.Counter, error) {
	var list []account.Counter
	err := db.bolt.View(func(tx *bolt.Tx) error {
		list = nil
		return tx.Bucket(bucketCounters).ForEach(func(k, v []byte) error {
			c, err := decodeCounter(string(k), v)
			if err != nil {
				return err
			}
			list = append(list, c)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list counters: %w", err)
	}
	return list, nil
}

// Counter implements account.Store.
func (db *DB) Counter(key string) (account.Counter, error) {
	var c account.Counter
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		c, err = getCounter(tx.Bucket(bucketCounters), key)
		return err
	})
	if err != nil {
		return account.Counter{}, fmt.Errorf("read counter %q: %w", key, err)
	}
	return c, nil
}

// PruneCounters implements account.Store.
func (db *DB) PruneCounters(drop func(account.Counter) bool) (int, error) {
	var n int
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(bucketCounters)
		var over [][]byte
		// Collect first: deleting while iterating a bucket is not allowed.
		err := b.ForEach(func(k, v []byte) error {
			c, err := decodeCounter(string(k), v)
			if err != nil {
				return err
			}
			if drop(c) {
				over = append(over, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range over {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("delete counter %q: %w", k, err)
			}
		}
		n = len(over)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune counters: %w", err)
	}
	return n, nil
}
