package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Re-enrollment asks first (SPEC §4 rule 21).

func TestReEnroll_AStolenSessionNeitherSeesNorConfirmsTheNewSecret(t *testing.T) {
	e := newEnv(t)
	owner := e.client()
	oldSecret, _ := owner.enroll("alice")
	thief := e.client()
	thief.signIn("alice", oldSecret)

	// The real user starts moving to a new app.
	r := owner.postJSON("/.totp-auth/setup", map[string]string{"password": testPassword})
	if r.StatusCode != 200 {
		t.Fatalf("password step: %d %s", r.StatusCode, r.Body)
	}
	newSecret := r.JSON["secret"].(string)

	// The thief's session is asked for the password and shown nothing.
	r = thief.getJSON("/.totp-auth/setup")
	if r.StatusCode != http.StatusForbidden || r.JSON["error"] != "password_required" || strings.Contains(r.Body, newSecret) {
		t.Fatalf("another session's GET setup: %d %s", r.StatusCode, r.Body)
	}
	if page := thief.getHTML("/.totp-auth/setup"); strings.Contains(page.Body, newSecret) || !strings.Contains(page.Body, `name="password"`) {
		t.Fatalf("another session's setup page shows the secret or no password field:\n%s", page.Body)
	}
	// Nor can it confirm the real user's new secret with a code it computed.
	e.clock.Advance(30 * time.Second)
	if r := thief.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(newSecret, 0)}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("another session confirmed the secret: %d %s", r.StatusCode, r.Body)
	}
	// A wrong password counts as a failure and shows nothing.
	if r := thief.postJSON("/.totp-auth/setup", map[string]string{"password": "guess"}); r.StatusCode != http.StatusUnauthorized || r.JSON["error"] != "invalid_credentials" {
		t.Fatalf("wrong password: %d %s", r.StatusCode, r.Body)
	}
	if acct, _ := e.store.Account("alice"); acct.TOTPSecret != oldSecret {
		t.Fatal("the thief moved the user to another secret")
	}
	// The real user's session confirms it.
	if r := owner.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(newSecret, 0)}); r.StatusCode != 200 {
		t.Fatalf("confirm from the asking session: %d %s", r.StatusCode, r.Body)
	}
}

func TestReEnroll_ASecondSessionAskingReplacesTheFirstOnesSecret(t *testing.T) {
	e := newEnv(t)
	a := e.client()
	secret, _ := a.enroll("alice")
	b := e.client()
	b.signIn("alice", secret)
	first := a.postJSON("/.totp-auth/setup", map[string]string{"password": testPassword}).JSON["secret"].(string)
	second := b.postJSON("/.totp-auth/setup", map[string]string{"password": testPassword}).JSON["secret"].(string)
	if first == second {
		t.Fatal("the second session was handed the first one's secret")
	}
	e.clock.Advance(30 * time.Second)
	if r := a.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(first, 0)}); r.StatusCode == 200 {
		t.Fatal("a replaced secret was confirmed")
	}
}

func TestReEnroll_BrowserGivesThePasswordThenSeesTheKey(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	page := c.getHTML("/.totp-auth/setup")
	if page.StatusCode != 200 || strings.Contains(page.Body, `class="secret"`) || !strings.Contains(page.Body, `name="password"`) {
		t.Fatalf("setup page before the password: %d\n%s", page.StatusCode, page.Body)
	}
	r := c.postForm("/.totp-auth/setup", "/.totp-auth/setup", url.Values{"password": {testPassword}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/setup" {
		t.Fatalf("password form: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	if page := c.getHTML("/.totp-auth/setup"); !strings.Contains(page.Body, `class="secret"`) {
		t.Fatalf("setup page after the password shows no key:\n%s", page.Body)
	}
}
