package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// Enrollment: nothing is enabled before confirmation (SPEC §3 flow 3, §4
// rule 6).

func TestEnroll_RepeatedSetupShowsTheSameSecretUntilItExpires(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.login("alice", testPassword)
	first := c.getJSON("/.totp-auth/setup").JSON["secret"]
	if again := c.getJSON("/.totp-auth/setup").JSON["secret"]; again != first {
		t.Fatalf("reload changed the secret")
	}
	e.clock.Advance(4 * time.Minute) // pending cookie still valid (5 min)
	if again := c.getJSON("/.totp-auth/setup").JSON["secret"]; again != first {
		t.Fatalf("secret changed before it expired")
	}
}

func TestEnroll_ExpiredSecretCannotBeConfirmed(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.login("alice", testPassword)
	secret := c.getJSON("/.totp-auth/setup").JSON["secret"].(string)
	e.clock.Advance(gateway.EnrollmentTTL + time.Second)
	// A fresh password step; the old secret is past its ten minutes.
	c.login("alice", testPassword)
	r := c.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(secret, 0)})
	if r.StatusCode != 400 || r.JSON["error"] != "setup_expired" {
		t.Fatalf("got %d %s, want 400 setup_expired", r.StatusCode, r.Body)
	}
}

func TestEnroll_NothingIsEnabledBeforeConfirmation(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.login("alice", testPassword)
	secret := c.getJSON("/.totp-auth/setup").JSON["secret"].(string)
	r := c.postJSON("/.totp-auth/setup", map[string]string{"code": "000000"})
	if r.StatusCode != 400 || r.JSON["error"] != "invalid_code" {
		t.Fatalf("wrong code: %d %s", r.StatusCode, r.Body)
	}
	acct, _ := e.store.Account("alice")
	if acct.TOTPSecret != "" || len(acct.BackupCodes) != 0 {
		t.Fatal("TOTP enabled before a valid confirmation")
	}
	// A new client with the password is still sent to enrollment, and the
	// unconfirmed secret gives no way past the second factor.
	c2 := e.client()
	r = c2.login("alice", testPassword)
	if r.JSON["status"] != "enroll_required" {
		t.Fatalf("login after unconfirmed setup: %s", r.Body)
	}
	r = c2.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0)})
	if r.StatusCode != 401 {
		t.Fatalf("2fa with an unconfirmed secret: %d %s", r.StatusCode, r.Body)
	}
}

func TestEnroll_PasswordOnlyCookieCannotReplaceAnEnabledSecret(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	attacker := e.client()
	r := attacker.login("alice", testPassword)
	if r.JSON["status"] != "2fa_required" {
		t.Fatalf("login: %s", r.Body)
	}
	if r := attacker.getJSON("/.totp-auth/setup"); r.StatusCode != 401 {
		t.Fatalf("setup with a 2fa-stage pending cookie: %d %s", r.StatusCode, r.Body)
	}
}

func TestEnroll_WrongCodeShowsTheSetupFormAgain(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.postForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	first := c.getHTML("/.totp-auth/setup").Body
	r := c.postForm("/.totp-auth/setup", "/.totp-auth/setup", url.Values{"code": {"000000"}})
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.Body, `class="qr"`) || !strings.Contains(r.Body, "not right") {
		t.Fatalf("wrong code: %d, want the setup form with an error:\n%s", r.StatusCode, r.Body)
	}
	secretOf := func(page string) string {
		i := strings.Index(page, `id="secret"`)
		return page[i : i+80]
	}
	if secretOf(first) != secretOf(r.Body) {
		t.Error("a wrong code changed the key being set up")
	}
}
