package e2e_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/internal/pgtest"
)

// pg is the PostgreSQL cluster the tests share, started by the first test
// that needs it and stopped by TestMain. A test that stops its server
// starts a cluster of its own.
var pg struct {
	once   sync.Once
	server *pgtest.Server
	err    error
}

// postgresDatabase returns the connection string of a new, empty database
// on the shared cluster.
func postgresDatabase(t *testing.T) string {
	t.Helper()
	pg.once.Do(func() { pg.server, pg.err = pgtest.Start() })
	if pg.err != nil {
		t.Fatal(pg.err)
	}
	dsn, err := pg.server.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func stopPostgres() {
	if pg.server != nil {
		_ = pg.server.Close()
	}
}

// ownPostgres starts a cluster for t alone and returns it with the
// connection string of an empty database on it.
func ownPostgres(t *testing.T) (*pgtest.Server, string) {
	t.Helper()
	s, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	dsn, err := s.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return s, dsn
}

// psql runs a statement on dsn as an operator would.
func psql(t *testing.T, dsn, statement string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, statement, args...); err != nil {
		t.Fatalf("%s: %v", statement, err)
	}
}

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
