package e2e_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/internal/pgtest"
)

func stopPostgres() { _ = pgtest.Cleanup() }

// cluster is two Caddy instances on one PostgreSQL database, each in front
// of the same upstream, and a third Caddy that balances between them.
type cluster struct {
	a, b, lb             *caddyProc
	aPort, bPort, lbPort int
	dsn                  string
	up                   *upstream
}

// postgresBlock returns a totp_auth block on dsn with the test key, user
// lines for users and extra setting lines.
func postgresBlock(dsn string, users []string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "totp_auth {\n\t\tpostgres %q\n\t\tencryption_key %s\n", dsn, testKey)
	for _, line := range extra {
		fmt.Fprintf(&b, "\t\t%s\n", line)
	}
	for _, u := range users {
		fmt.Fprintf(&b, "\t\tuser %s %s\n", u, testHash)
	}
	b.WriteString("\t}")
	return b.String()
}

// newCluster starts the two instances and the balancer. The instances
// trust the balancer's X-Forwarded-For, so their per-IP counters see the
// clients, not the balancer.
func newCluster(t *testing.T, dsn string, users []string, extra ...string) *cluster {
	t.Helper()
	c := &cluster{
		a: newCaddy(t), b: newCaddy(t), lb: newCaddy(t),
		aPort: freePort(t), bPort: freePort(t), lbPort: freePort(t),
		dsn: dsn, up: newUpstream(t),
	}
	block := postgresBlock(dsn, users, extra...)
	globals := "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n"
	var wg sync.WaitGroup
	for _, inst := range []struct {
		p    *caddyProc
		port int
	}{{c.a, c.aPort}, {c.b, c.bPort}} {
		cfg := inst.p.caddyfile(globals, site(inst.port, block, "reverse_proxy "+c.up.addr()))
		wg.Add(1)
		go func() { defer wg.Done(); inst.p.start(cfg, inst.port) }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	c.lb.start(c.lb.caddyfile("", site(c.lbPort, fmt.Sprintf(
		"reverse_proxy 127.0.0.1:%d 127.0.0.1:%d {\n\t\tlb_policy round_robin\n\t}", c.aPort, c.bPort))), c.lbPort)
	return c
}

// on returns a client of the instance on port holding a copy of from's
// cookies: the same browser, sent to another instance by the balancer.
func on(from *client, port int) *client {
	other := from.copyCookies()
	u, _ := url.Parse(other.base)
	other.base = fmt.Sprintf("http://%s:%d", u.Hostname(), port)
	return other
}

// rowLock holds a row lock on one row of the store's tables, as a slow
// transaction of another instance would, until release is called. A race
// test holds it while its requests arrive, so that they all reach their
// transactions before any of them may finish: without the store's own
// locking they would then all act on the same stale row.
type rowLock struct {
	t    *testing.T
	conn *pgx.Conn
	dsn  string
}

func lockRow(t *testing.T, dsn, table, column, value string) *rowLock {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	l := &rowLock{t: t, conn: conn, dsn: dsn}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var n int
	err = conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM totp_auth.%s WHERE %s = $1 FOR UPDATE) AS locked", table, column), value).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("no %s row with %s = %q to lock", table, column, value)
	}
	return l
}

// releaseAfterWaiters waits until n other sessions wait for a lock (or d
// passes), and a little longer for more to queue up, then ends the
// transaction holding the row.
func (l *rowLock) releaseAfterWaiters(n int, d time.Duration) {
	l.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var waiting int
		err := l.conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&waiting)
		if err != nil {
			l.t.Fatal(err)
		}
		if waiting >= n {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := l.conn.Exec(ctx, "ROLLBACK"); err != nil {
		l.t.Fatal(err)
	}
}
