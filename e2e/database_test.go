package e2e_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// lockWaitLimit is well below storage's lock timeout (5 s): an operation
// that finishes sooner did not wait for bbolt's file lock.
const lockWaitLimit = 3 * time.Second

func TestSharedDB_TwoSiteBlocksShareOneDatabase(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	portA, portB := freePort(t), freePort(t)
	c.start(c.caddyfile("",
		site(portA, c.totpAuth("shared.db", []string{"dave"}), "reverse_proxy "+up.addr())+
			site(portB, c.totpAuth("shared.db", []string{"dave"}), "reverse_proxy "+up.addr())),
		portA, portB)

	en := enroll(t, newClient(t, portA), "dave")

	// Site B sees the enrollment made through site A.
	b := newClient(t, portB)
	r := b.api("POST", "login", map[string]string{"username": "dave", "password": testPassword})
	expect(t, "POST login on site B", r, http.StatusOK)
	if got := r.json(t)["status"]; got != "2fa_required" {
		t.Fatalf("POST login on site B: status %v, want 2fa_required (the enrollment on site A is not shared)\n%s", got, r.body)
	}
	r = b.api("POST", "2fa", map[string]string{"code": totp(t, en.secret, en.codeTime.Add(30*time.Second))})
	expect(t, "POST 2fa on site B", r, http.StatusOK)
	if got := identityHeaders(upstreamEcho(t, b, "/"), "Remote-User"); len(got["Remote-User"]) != 1 || got["Remote-User"][0] != "dave" {
		t.Errorf("upstream behind site B got identity %v, want Remote-User: dave", got)
	}
}

func TestReload_KeepsSessionsAndDoesNotWaitForTheLock(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port, added := freePort(t), freePort(t)
	block := c.totpAuth("totp.db", []string{"erin"})
	c.start(c.caddyfile("", site(port, block, "reverse_proxy "+up.addr())), port)
	b := newClient(t, port)
	enroll(t, b, "erin")

	// The new config changes the site and adds one on the same database.
	changed := c.totpAuth("totp.db", []string{"erin"}, `issuer "After Reload"`)
	status, body, took := c.reload(c.caddyfile("",
		site(port, changed, "reverse_proxy "+up.addr())+site(added, changed, "reverse_proxy "+up.addr())))
	if status != http.StatusOK {
		t.Fatalf("reload: status %d: %s", status, body)
	}
	if took > lockWaitLimit {
		t.Errorf("reload took %s: it waited for the database lock instead of sharing the open database", took)
	}
	if r := newClient(t, added).do("GET", "/", nil, "Accept", "application/json"); r.status != http.StatusUnauthorized {
		t.Fatalf("site added by the reload: status %d, want 401 (is the new config running?)", r.status)
	}

	if user, status := whoami(t, b); user != "erin" {
		t.Fatalf("session after reload: user %q (status %d), want erin: the reload logged the user out", user, status)
	}
	upstreamEcho(t, b, "/after-reload")
	if strings.Contains(c.log.String(), "held the database") {
		t.Error("the log shows a wait for the database lock")
	}
}

func TestReload_WithAnotherKeyForTheSameDatabaseIsRefused(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"frank"}), "reverse_proxy "+up.addr())), port)
	b := newClient(t, port)
	enroll(t, b, "frank")

	otherKey := strings.Repeat("a1", 32)
	block := strings.Replace(c.totpAuth("totp.db", []string{"frank"}), testKey, otherKey, 1)
	status, body, _ := c.reload(c.caddyfile("", site(port, block, "reverse_proxy "+up.addr())))
	if status == http.StatusOK {
		t.Fatal("reload with another encryption_key for an open database succeeded")
	}
	if !strings.Contains(body, "different encryption_key") {
		t.Errorf("reload refusal does not say what is wrong: %s", body)
	}
	if strings.Contains(body, otherKey) || strings.Contains(body, testKey) {
		t.Errorf("reload refusal reveals a key: %s", body)
	}
	if user, _ := whoami(t, b); user != "frank" {
		t.Error("the old configuration stopped serving after a refused reload")
	}
}

func TestDefaultKey_GeneratedOnceBesideTheDatabaseWithAWarning(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	db := c.path("nokey.db")
	cfg := c.caddyfile("", site(port, fmt.Sprintf("totp_auth {\n\t\tdb_path %s\n\t}", db), "respond ok"))
	c.start(cfg, port)

	info, err := os.Stat(db + ".key")
	if err != nil {
		t.Fatalf("no key file beside the database: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	first, _ := os.ReadFile(db + ".key")
	log := c.log.String()
	if !strings.Contains(log, `"level":"warn"`) || !strings.Contains(log, "generated the encryption key") || !strings.Contains(log, db+".key") {
		t.Errorf("no warning naming the generated key file in the log:\n%s", log)
	}
	if strings.Contains(log, strings.TrimSpace(string(first))) {
		t.Error("the log contains the key itself")
	}

	c.stop()
	seen := len(c.log.String())
	c.start(cfg, port)
	if again, _ := os.ReadFile(db + ".key"); string(again) != string(first) {
		t.Error("the key file changed on the second start")
	}
	if strings.Contains(c.log.String()[seen:], "generated the encryption key") {
		t.Error("a key was generated again on the second start")
	}
}
