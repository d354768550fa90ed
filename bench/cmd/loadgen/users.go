package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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

// users measures what the number of database users costs a running Caddy
// (SPEC §6), for bbolt and PostgreSQL, with 10 and with -n users in the
// database and -lines `user` lines in the Caddyfile beside them: the time
// from exec until the port answers, the resident memory after -requests
// signed-in requests, and the server CPU per signed-in request under load.
func users(args []string) error {
	fs := flag.NewFlagSet("users", flag.ExitOnError)
	n := fs.Int("n", 100_000, "database users")
	dir := fs.String("dir", "", "a directory for the bbolt files and Caddyfiles (on tmpfs such as /dev/shm, seeding 100,000 users one transaction each takes seconds instead of many minutes)")
	dsnFile := fs.String("dsn-file", "", "a file with the connection string of an empty PostgreSQL database (from `loadgen postgres`)")
	caddyBin := fs.String("caddy", "", "the Caddy binary with totp_auth to measure")
	lines := fs.Int("lines", 3, "`user` lines in the Caddyfile besides the signed-in one")
	requests := fs.Int("requests", 1000, "signed-in requests before the memory is read")
	loadDur := fs.Duration("load", 3*time.Second, "length of the CPU measurement under load")
	conns := fs.Int("conns", 16, "connections of the CPU measurement")
	clkTck := fs.Int("clk-tck", 100, "clock ticks per second (getconf CLK_TCK)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *dsnFile == "" || *caddyBin == "" {
		return fmt.Errorf("users: -dir, -dsn-file and -caddy are required")
	}
	dsn, err := os.ReadFile(*dsnFile)
	if err != nil {
		return err
	}
	keyHex := make([]byte, 32)
	if _, err := rand.Read(keyHex); err != nil {
		return err
	}
	key, err := secrets.ParseKey(hex.EncodeToString(keyHex))
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	if err != nil {
		return err
	}
	m := usersRun{dir: *dir, caddy: *caddyBin, key: hex.EncodeToString(keyHex), hash: string(hash), lines: *lines,
		requests: *requests, loadDur: *loadDur, conns: *conns, clkTck: *clkTck}
	fmt.Printf("\n== cost of the user base in a running Caddy: %s, %d CPUs (%s), %s\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOARCH, runtime.Version())
	fmt.Printf("   each Caddy has %d `user` lines; start: exec until the port answers; RSS after %d signed-in requests (peak in brackets); CPU: %s of signed-in requests @ %d conns\n",
		*lines+1, *requests, *loadDur, *conns)
	fmt.Printf("\n   %-8s %8s %10s %10s %12s %12s %10s\n", "store", "users", "seeded in", "start", "RSS MB", "(peak MB)", "CPU µs/req")
	for _, count := range []int{10, *n} {
		path := filepath.Join(*dir, fmt.Sprintf("users-%d.db", count))
		seedStart := time.Now()
		if err := seedBbolt(path, key, hash, count); err != nil {
			return fmt.Errorf("seed bbolt: %w", err)
		}
		seeded := time.Since(seedStart)
		c, err := m.measure(fmt.Sprintf("bbolt-%d", count), "db_path "+path)
		if err != nil {
			return err
		}
		c.print("bbolt", count, seeded)
	}
	for _, count := range []int{10, *n} {
		seedStart := time.Now()
		db, err := seedPostgres(string(dsn), fmt.Sprintf("users_%d", count), key, hash, count)
		if err != nil {
			return fmt.Errorf("seed postgres: %w", err)
		}
		seeded := time.Since(seedStart)
		c, err := m.measure(fmt.Sprintf("postgres-%d", count), fmt.Sprintf("postgres %q", db))
		if err != nil {
			return err
		}
		c.print("postgres", count, seeded)
	}
	return nil
}

// usersRun is what every Caddy of one `loadgen users` run shares.
type usersRun struct {
	dir, caddy, key, hash string
	lines, requests       int
	loadDur               time.Duration
	conns, clkTck         int
}

// caddyCost is one running Caddy's measurement.
type caddyCost struct {
	start         time.Duration
	rss, peak     uint64 // bytes
	cpuPerRequest float64
}

// measure starts Caddy with one totp_auth site on the store storeLine
// names, and measures it.
func (m usersRun) measure(name, storeLine string) (caddyCost, error) {
	var c caddyCost
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return c, err
	}
	addr := ln.Addr().String()
	ln.Close()
	var users strings.Builder
	fmt.Fprintf(&users, "\t\tuser bench %s\n", m.hash)
	for i := range m.lines {
		fmt.Fprintf(&users, "\t\tuser line%d %s\n", i, m.hash)
	}
	caddyfile := filepath.Join(m.dir, name+".Caddyfile")
	err = os.WriteFile(caddyfile, []byte(fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	storage file_system %s
	log {
		level ERROR
	}
}

http://%s {
	bind 127.0.0.1
	totp_auth {
		%s
		encryption_key %s
		issuer bench
%s	}
	respond 200
}
`, filepath.Join(m.dir, name+"-data"), addr, storeLine, m.key, users.String())), 0o600)
	if err != nil {
		return c, err
	}
	cmd := exec.Command(m.caddy, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(m.dir, name+"-xdg"), "XDG_CONFIG_HOME="+filepath.Join(m.dir, name+"-xdg"))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return c, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Since(started) > 60*time.Second {
			return c, fmt.Errorf("%s: Caddy did not answer within a minute: %v; its log:\n%s", name, err, log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.start = time.Since(started)
	session, err := signIn("http://"+addr, "/.totp-auth", "totp_auth_session", "bench", "x")
	if err != nil {
		return c, fmt.Errorf("%s: sign in: %w", name, err)
	}
	t := &target{name: name, addr: addr, cookieName: "totp_auth_session"}
	t.setAuth("Cookie: totp_auth_session=" + session)
	cpu, err := newProcCPU(cmd.Process.Pid, 0, m.clkTck)
	if err != nil {
		return c, err
	}
	r, err := segment(t, 1, time.Minute, int64(m.requests), cpu)
	if err != nil {
		return c, err
	}
	if r.requests != int64(m.requests) || r.non200 > 0 || r.errors > 0 {
		return c, fmt.Errorf("%s: %d of %d signed-in requests, %d not 200, %d errors", name, r.requests, m.requests, r.non200, r.errors)
	}
	if c.rss, c.peak, err = residentMemory(cmd.Process.Pid); err != nil {
		return c, err
	}
	r, err = segment(t, m.conns, m.loadDur, 5_000_000, cpu)
	if err != nil {
		return c, err
	}
	if r.non200 > 0 || r.errors > 0 {
		return c, fmt.Errorf("%s: %d answers not 200, %d errors under load", name, r.non200, r.errors)
	}
	c.cpuPerRequest = r.cpuPerReq()
	return c, nil
}

// residentMemory reads VmRSS and VmHWM (the peak) of process pid.
func residentMemory(pid int) (rss, peak uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "VmHWM:":
			peak = v << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, peak, nil
}

func (c caddyCost) print(store string, count int, seeded time.Duration) {
	fmt.Printf("   %-8s %8d %10s %10s %12.1f %12.1f %10.1f\n", store, count, seeded.Round(time.Millisecond),
		c.start.Round(time.Millisecond), float64(c.rss)/1e6, float64(c.peak)/1e6, c.cpuPerRequest)
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

// seedPostgres makes count users with a password in a fresh database
// named db, and returns its connection string: the store creates the
// schema, one INSERT makes the rows and one more counts their one kind of
// password hash (which UpdateAccount keeps for users added one by one).
func seedPostgres(dsn, db string, key secrets.Key, hash []byte, count int) (string, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return "", err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", err
	}
	dbDSN := strings.Replace(dsn, "dbname="+cfg.Database, "dbname="+db, 1)
	store, err := postgres.Open(ctx, dbDSN, postgres.Options{Keys: []secrets.Key{key}})
	if err != nil {
		return "", err
	}
	if err := store.Close(); err != nil {
		return "", err
	}
	seed, err := pgx.Connect(ctx, dbDSN)
	if err != nil {
		return "", err
	}
	defer seed.Close(ctx)
	_, err = seed.Exec(ctx, "INSERT INTO totp_auth.accounts (name, stored, password_hash) SELECT 'user' || lpad(i::text, 6, '0'), true, $1 FROM generate_series(0, $2 - 1) AS i", hash, count)
	if err != nil {
		return "", err
	}
	_, err = seed.Exec(ctx, "INSERT INTO totp_auth.password_models (model, accounts) VALUES ($1, $2)", account.HashModel(hash), count)
	return dbDSN, err
}
