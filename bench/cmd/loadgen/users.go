package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/operator"
	"github.com/totp-auth/totp_auth/storage"
	"github.com/totp-auth/totp_auth/storage/postgres"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// users measures what the number of database users costs a store (SPEC
// §6): with 10 and with -n users, how long opening it takes (the store's
// share of Caddy's start-up), the heap once every user's session state is
// in memory (the worst case: every user signed in), and what the check of
// a signed-in request (SessionState) costs once the user is in memory.
func users(args []string) error {
	fs := flag.NewFlagSet("users", flag.ExitOnError)
	n := fs.Int("n", 100_000, "database users")
	dir := fs.String("dir", "", "a directory for the bbolt files (on tmpfs such as /dev/shm, seeding 100,000 users one transaction each takes seconds instead of many minutes)")
	dsnFile := fs.String("dsn-file", "", "a file with the connection string of an empty PostgreSQL database (from `loadgen postgres`)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *dsnFile == "" {
		return fmt.Errorf("users: -dir and -dsn-file are required")
	}
	dsn, err := os.ReadFile(*dsnFile)
	if err != nil {
		return err
	}
	key, err := secrets.NewKey()
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	if err != nil {
		return err
	}
	fmt.Printf("\n== cost of the user base (store opened in this process; a signed-in request's check is SessionState)\n")
	for _, count := range []int{10, *n} {
		path := filepath.Join(*dir, fmt.Sprintf("users-%d.db", count))
		seedStart := time.Now()
		if err := seedBbolt(path, key, hash, count); err != nil {
			return fmt.Errorf("seed bbolt: %w", err)
		}
		seeded := time.Since(seedStart)
		m, err := measureStore(count, func() (account.Store, func() error, error) {
			db, err := storage.Open(path, storage.Options{Keys: []secrets.Key{key}})
			return db, func() error { return db.Close() }, err
		})
		if err != nil {
			return err
		}
		m.print("bbolt", count, seeded)
	}
	for _, count := range []int{10, *n} {
		schema := fmt.Sprintf("users_%d", count)
		seedStart := time.Now()
		if err := seedPostgres(string(dsn), schema, key, hash, count); err != nil {
			return fmt.Errorf("seed postgres: %w", err)
		}
		seeded := time.Since(seedStart)
		m, err := measureStore(count, func() (account.Store, func() error, error) {
			db, err := postgres.Open(context.Background(), string(dsn), postgres.Options{Keys: []secrets.Key{key}, Schema: schema})
			return db, func() error { return db.Close() }, err
		})
		if err != nil {
			return err
		}
		m.print("postgres", count, seeded)
	}
	return nil
}

func userName(i int) string { return fmt.Sprintf("user%06d", i) }

// seedBbolt makes count users with a password, through the store, from
// several goroutines so that bbolt can batch their commits.
func seedBbolt(path string, key secrets.Key, hash []byte, count int) error {
	db, err := storage.Open(path, storage.Options{Keys: []secrets.Key{key}})
	if err != nil {
		return err
	}
	defer db.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < count; i += 64 {
				if err := operator.SetPassword(db, userName(i), hash); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// seedPostgres makes count users with a password in a fresh schema: the
// store creates the schema, one INSERT makes the rows.
func seedPostgres(dsn, schema string, key secrets.Key, hash []byte, count int) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		return err
	}
	db, err := postgres.Open(context.Background(), dsn, postgres.Options{Keys: []secrets.Key{key}, Schema: schema})
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema, "accounts"}.Sanitize()+
		" (name, stored, password_hash) SELECT 'user' || lpad(i::text, 6, '0'), true, $1 FROM generate_series(0, $2 - 1) AS i", hash, count)
	return err
}

type storeCost struct {
	open       time.Duration
	heapOpen   uint64 // heap in use after opening
	heapAll    uint64 // after every user's state is in memory
	hitNs      float64
	firstCheck time.Duration
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func measureStore(count int, open func() (account.Store, func() error, error)) (storeCost, error) {
	var c storeCost
	base := heapInUse()
	start := time.Now()
	s, closeStore, err := open()
	if err != nil {
		return c, err
	}
	defer closeStore()
	c.open = time.Since(start)
	c.heapOpen = heapInUse() - min(base, heapInUse())
	// Wait for the PostgreSQL store's first heartbeat, so its memory is
	// trusted before the checks are timed.
	time.Sleep(500 * time.Millisecond)
	start = time.Now()
	if _, err := s.SessionState(userName(1)); err != nil {
		return c, err
	}
	c.firstCheck = time.Since(start)
	const calls = 1_000_000
	name := userName(1)
	start = time.Now()
	for range calls {
		if _, err := s.SessionState(name); err != nil {
			return c, err
		}
	}
	c.hitNs = float64(time.Since(start).Nanoseconds()) / calls
	for i := range count {
		if _, err := s.SessionState(userName(i)); err != nil {
			return c, err
		}
	}
	c.heapAll = heapInUse() - min(base, heapInUse())
	return c, nil
}

func (c storeCost) print(store string, count int, seeded time.Duration) {
	fmt.Printf("%-8s %7d users (seeded in %s): open %s, heap after open %.1f MB, with every user's state in memory %.1f MB, first check %s, check in memory %.0f ns\n",
		store, count, seeded.Round(time.Millisecond), c.open.Round(time.Microsecond),
		float64(c.heapOpen)/1e6, float64(c.heapAll)/1e6, c.firstCheck.Round(time.Microsecond), c.hitNs)
}
