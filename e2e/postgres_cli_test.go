package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/internal/pgtest"
)

// The `caddy totp-auth` commands work on a PostgreSQL database directly,
// Caddy running or not, and every running instance notices at once.
func TestPostgres_CommandsChangeTheDatabaseAndEveryInstanceNoticesAtOnce(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	c := newCluster(t, dsn, nil, "require_2fa false")
	pgFlags := []string{"--postgres", dsn, "--key", testKey}
	cli := func(stdin string, args ...string) string {
		t.Helper()
		out, err := c.a.cli(stdin, nil, append(args, pgFlags...)...)
		if err != nil {
			t.Fatalf("caddy totp-auth %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	cli(testPassword+"\n", "user", "add", "bob", "--cost", "4")
	onA := passwordSession(t, c.aPort, "bob")
	onB := on(onA, c.bPort)
	expect(t, "bob's session on B", onB.do("GET", "/app", nil, "Accept", "application/json"), http.StatusOK)
	if out := cli("", "user", "list"); !strings.Contains(out, "bob") {
		t.Fatalf("user list does not show bob:\n%s", out)
	}
	// The configuration names the database too.
	cfg := c.a.writeConfig("Caddyfile.cli", c.a.caddyfile("", site(c.aPort, postgresBlock(dsn, nil, "require_2fa false"), "reverse_proxy "+c.up.addr())))
	if out, err := c.a.cli("", []string{"TOTP_AUTH_KEY=" + testKey}, "user", "list", "--config", cfg); err != nil || !strings.Contains(out, "bob") {
		t.Fatalf("user list --config: %v\n%s", err, out)
	}

	cli("a new password\n", "user", "passwd", "bob", "--cost", "4")
	for _, cl := range []*client{onA, onB} {
		refusedWithin(t, cl, time.Second, "a session after `user passwd`")
	}
	if r := login(newClient(t, c.bPort), "bob", testPassword); r.status != http.StatusUnauthorized {
		t.Fatalf("the old password after `user passwd`: %d %s", r.status, r.body)
	}
	expect(t, "the new password", login(newClient(t, c.aPort), "bob", "a new password"), http.StatusOK)

	cli("", "user", "remove", "bob")
	if r := login(newClient(t, c.bPort), "bob", "a new password"); r.status != http.StatusUnauthorized {
		t.Fatalf("a removed user signs in: %d %s", r.status, r.body)
	}
}

// A bbolt database copied into PostgreSQL keeps every authenticator, the
// unused backup codes and even the sessions (the session keys move too).
func TestPostgres_MigrateFromBboltKeepsAuthenticatorsCodesAndSessions(t *testing.T) {
	t.Parallel()
	single := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	cfg := single.caddyfile("", site(port, single.totpAuth("totp.db", []string{"carol"}), "reverse_proxy "+up.addr()))
	single.start(cfg, port)
	owner := newClient(t, port)
	expect(t, "login", login(owner, "carol", testPassword), http.StatusOK)
	secret := owner.api("GET", "setup", nil).json(t)["secret"].(string)
	enrolledAt := time.Now()
	r := owner.api("POST", "setup", map[string]string{"code": totp(t, secret, enrolledAt)})
	expect(t, "setup", r, http.StatusOK)
	codes := r.json(t)["backup_codes"].([]any)
	single.stop()

	dsn := pgtest.Database(t)
	configFile := single.writeConfig("Caddyfile.migrate", cfg)
	out, err := single.cli("", nil, "migrate", "--to-postgres", dsn, "--config", configFile)
	if err != nil || !strings.Contains(out, "1 users (1 with 2FA)") {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if out, err := single.cli("", nil, "migrate", "--to-postgres", dsn, "--config", configFile); err == nil || !strings.Contains(out, "empty database") {
		t.Fatalf("a second migrate into the same database: %v\n%s", err, out)
	}

	c := newCluster(t, dsn, []string{"carol"})
	expect(t, "the session made on bbolt, on A", on(owner, c.aPort).do("GET", "/app", nil, "Accept", "application/json"), http.StatusOK)

	withApp := newClient(t, c.bPort)
	expect(t, "password on B", login(withApp, "carol", testPassword), http.StatusOK)
	expect(t, "the same authenticator on B", withApp.api("POST", "2fa", map[string]string{"code": totp(t, secret, enrolledAt.Add(30*time.Second))}), http.StatusOK)

	withCode := newClient(t, c.aPort)
	expect(t, "password on A", login(withCode, "carol", testPassword), http.StatusOK)
	expect(t, "an unused backup code on A", withCode.api("POST", "2fa", map[string]string{"code": codes[0].(string)}), http.StatusOK)
	again := newClient(t, c.bPort)
	expect(t, "password on B", login(again, "carol", testPassword), http.StatusOK)
	expect(t, "the spent backup code on B", again.api("POST", "2fa", map[string]string{"code": codes[0].(string)}), http.StatusUnauthorized)
}
