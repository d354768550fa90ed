package gateway_test

import (
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// The account page's guarded actions (SPEC §3 flow 6, §4 rule 6).

func TestAccount_DisableNeedsPasswordAndCode(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.Optional2FA = true })
	c := e.client()
	c.login("alice", testPassword)
	// Turning 2FA on from a session asks for the password first (rule 21).
	secret := c.postJSON("/.totp-auth/setup", map[string]string{"password": testPassword}).JSON["secret"].(string)
	c.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(secret, 0)})
	e.clock.Advance(30 * time.Second)
	if r := c.postJSON("/.totp-auth/disable", map[string]string{"password": "wrong", "code": e.code(secret, 0)}); r.StatusCode != 401 {
		t.Fatalf("wrong password: %d", r.StatusCode)
	}
	if r := c.postJSON("/.totp-auth/disable", map[string]string{"password": testPassword, "code": "000000"}); r.StatusCode != 401 {
		t.Fatalf("wrong code: %d", r.StatusCode)
	}
	if st, _ := e.store.SessionState("alice"); !st.TOTPEnabled {
		t.Fatal("disabled by a failed attempt")
	}
	e.clock.Advance(30 * time.Second)
	if r := c.postJSON("/.totp-auth/disable", map[string]string{"password": testPassword, "code": e.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("disable: %d %s", r.StatusCode, r.Body)
	}
	if st, _ := e.store.SessionState("alice"); st.TOTPEnabled {
		t.Fatal("still enabled")
	}
	if r := c.getJSON("/.totp-auth/whoami"); r.JSON["two_factor"] != false {
		t.Fatalf("whoami: %s", r.Body)
	}
}

func TestAccount_RegenerateNeedsACurrentCode(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	secret, old := c.enroll("alice")
	if r := c.postJSON("/.totp-auth/backup-codes", map[string]string{"code": "000000"}); r.StatusCode != 401 {
		t.Fatalf("without a valid code: %d", r.StatusCode)
	}
	e.clock.Advance(30 * time.Second)
	r := c.postJSON("/.totp-auth/backup-codes", map[string]string{"code": e.code(secret, 0)})
	if r.StatusCode != 200 || len(r.JSON["backup_codes"].([]any)) != 10 {
		t.Fatalf("regenerate: %d %s", r.StatusCode, r.Body)
	}
	c2 := e.client()
	c2.login("alice", testPassword)
	if r := c2.postJSON("/.totp-auth/2fa", map[string]string{"code": old[0]}); r.StatusCode != 401 {
		t.Fatal("old code still works after regeneration")
	}
}
