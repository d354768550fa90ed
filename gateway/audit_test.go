package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// The audit log: one line per event, never a password, code or secret
// (SPEC §4 rule 12).

func TestAuditLog_OneLinePerEventAndNoSecrets(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.login("alice", "wrong-password-xyz")
	secret, codes := c.enroll("alice")
	e.clock.Advance(30 * time.Second)
	code := e.code(secret, 0)
	c2 := e.client()
	c2.login("alice", testPassword)
	c2.postJSON("/.totp-auth/2fa", map[string]string{"code": "999999"})
	c2.postJSON("/.totp-auth/2fa", map[string]string{"code": codes[0]})
	c2.postJSON("/.totp-auth/backup-codes", nil)
	c2.postJSON("/.totp-auth/logout", nil)
	c.signIn("alice", secret) // the backup code ended c's session
	c.postJSON("/.totp-auth/logout-all", nil)

	want := map[string]string{
		"totp_auth password":                 "failure",
		"totp_auth enrollment":               "ok",
		"totp_auth sign_in":                  "ok",
		"totp_auth second_factor":            "failure",
		"totp_auth backup_code":              "ok",
		"totp_auth backup_codes_regenerated": "ok",
		"totp_auth logout":                   "ok",
		"totp_auth logout_all":               "ok",
	}
	for msg, outcome := range want {
		entries := e.logs.FilterMessage(msg).FilterField(zapString("outcome", outcome)).All()
		if len(entries) == 0 {
			t.Errorf("no %q line with outcome %s", msg, outcome)
			continue
		}
		f := entries[0].ContextMap()
		if f["user"] != "alice" || f["client_ip"] != "127.0.0.1" {
			t.Errorf("%s: fields %v", msg, f)
		}
	}
	forbidden := append([]string{secret, testPassword, "wrong-password-xyz", code, "999999"}, codes...)
	for _, entry := range e.logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += " " + k + "=" + toString(v)
		}
		for _, s := range forbidden {
			if strings.Contains(line, s) {
				t.Errorf("log line %q holds a secret", line)
			}
		}
	}
}

func TestUnknownNames_APasswordInTheNameBoxIsNeitherLoggedNorStored(t *testing.T) {
	rec := &recordingStore{}
	e := newEnv(t, func(c *gateway.Config) { rec.Store = c.Store; c.Store = rec })
	const typo = "correct-horse-in-the-wrong-box"
	c := e.client()
	r1 := c.login(typo, "x")
	r2 := c.login("alice", "x")
	if r1.StatusCode != r2.StatusCode || r1.Body != r2.Body {
		t.Fatalf("unknown and known names answered differently: %d %s / %d %s", r1.StatusCode, r1.Body, r2.StatusCode, r2.Body)
	}
	c.login(typo, "y")
	for _, entry := range e.logs.All() {
		if strings.Contains(toString(entry.ContextMap())+entry.Message, typo) {
			t.Errorf("log line holds the unknown name: %s %v", entry.Message, entry.ContextMap())
		}
	}
	unknown := map[string]bool{}
	for _, k := range rec.keys {
		if strings.Contains(k, typo) {
			t.Errorf("counter key holds the unknown name: %q", k)
		}
		if strings.HasPrefix(k, "user:Unknown-") {
			unknown[k] = true
		}
	}
	if len(unknown) != 1 {
		t.Fatalf("unknown-name counter keys %v: want one keyed hash for both attempts", unknown)
	}
	var unknownKey string
	for k := range unknown {
		unknownKey = k
	}
	// A known user is still logged and counted by name.
	found := false
	for _, k := range rec.keys {
		found = found || k == "user:alice"
	}
	if !found {
		t.Errorf("alice's attempt was not counted as user:alice: %q", rec.keys)
	}
	users := e.logs.FilterField(zapString("outcome", "failure")).All()
	if len(users) < 3 || users[0].ContextMap()["user"] != unknownKey[len("user:"):] || users[1].ContextMap()["user"] != "alice" {
		t.Errorf("failure lines name %v", users)
	}
}
