package postgres

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// race runs do 50 times at once, alternating between two instances on one
// database, and returns how many calls succeeded. Every other result must
// be want.
func race(t *testing.T, setup func(db *DB), do func(db *DB) error, want error) int {
	t.Helper()
	instances := twoInstances(t)
	setup(instances[0])
	for _, db := range instances {
		warm(t, db)
	}
	// The first call to have read holds its transaction open until a
	// second call has read as well (or 200 ms have passed, which is what
	// the row lock makes it wait): without the lock both read the same
	// state and both succeed, every time. The calls after it only widen
	// the window a little.
	var firstTaken atomic.Bool
	second := make(chan struct{}, 1)
	hook := func() {
		if firstTaken.CompareAndSwap(false, true) {
			select {
			case <-second:
			case <-time.After(200 * time.Millisecond):
			}
			return
		}
		select {
		case second <- struct{}{}:
		default:
		}
		time.Sleep(time.Millisecond)
	}
	for _, db := range instances {
		db.testHookLocked = hook
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			switch err := do(instances[i%2]); {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, want):
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	return int(ok.Load())
}

// twoInstances opens two instances on a new schema, as two servers
// sharing it would, each with fourConns: eight calls in flight at once
// across the two.
func twoInstances(t *testing.T) [2]*DB {
	t.Helper()
	dsn, schema := inSchema(t)
	key := mustKey(t)
	return [2]*DB{
		openTest(t, dsn+fourConns, Options{Keys: []secrets.Key{key}, Schema: schema}),
		openTest(t, dsn+fourConns, Options{Keys: []secrets.Key{key}, Schema: schema}),
	}
}

// warm opens every connection of db's pool, so the racing calls start
// together instead of one connection handshake apart.
func warm(t *testing.T, db *DB) {
	t.Helper()
	var conns []*pgxpool.Conn
	for range db.pool.Config().MaxConns {
		c, err := db.pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
}

func TestRace_TOTPStepAcceptedOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	n := race(t,
		func(db *DB) { enroll(t, db, "alice") },
		func(db *DB) error { return account.AcceptStep(db, "alice", 1000) },
		account.ErrStepReused)
	if n != 1 {
		t.Fatalf("one time step accepted %d times, want once", n)
	}
}

func TestRace_BackupCodeSpentOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	code := []byte("$2a$10$fakehash.one")
	n := race(t,
		func(db *DB) {
			enroll(t, db, "alice")
			if err := account.ReplaceBackupCodes(db, "alice", [][]byte{code, []byte("$2a$10$fakehash.two")}); err != nil {
				t.Fatal(err)
			}
		},
		func(db *DB) error { return account.UseBackupCode(db, "alice", code) },
		account.ErrCodeUsed)
	if n != 1 {
		t.Fatalf("one backup code spent %d times, want once", n)
	}
}
