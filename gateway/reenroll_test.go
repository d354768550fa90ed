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

// A first enrollment's secret belongs to the pending sign-in that asked for
// it (SPEC §4 rule 21): a reload shows the same QR code, another sign-in
// of the same user (someone else who knows the password) gets a secret of
// its own and never this one, and the one confirmed first wins. So whoever
// else knows a new account's first password keeps no seed of the
// authenticator the user enrolls.
func TestEnroll_FirstSecretIsBoundToThePendingSignIn(t *testing.T) {
	e := newEnv(t)
	pendingSetup := func(c *client) string {
		t.Helper()
		if r := c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword}); r.JSON["status"] != "enroll_required" {
			t.Fatalf("login: %d %s", r.StatusCode, r.Body)
		}
		r := c.getJSON("/.totp-auth/setup")
		if r.StatusCode != 200 {
			t.Fatalf("setup: %d %s", r.StatusCode, r.Body)
		}
		return r.JSON["secret"].(string)
	}
	other, user := e.client(), e.client()
	seed := pendingSetup(other) // someone else who knows the first password
	if r := other.getJSON("/.totp-auth/setup"); r.JSON["secret"] != seed {
		t.Fatalf("a reload of the same sign-in shows %v, want the same secret", r.JSON["secret"])
	}
	mine := pendingSetup(user)
	if mine == seed {
		t.Fatal("a second sign-in of the same user was shown the first sign-in's secret")
	}
	if r := user.getJSON("/.totp-auth/setup"); r.JSON["secret"] != mine {
		t.Fatalf("a reload of the user's sign-in shows %v, want its own secret", r.JSON["secret"])
	}
	// The other sign-in cannot confirm the user's secret with its pending
	// cookie either: only its own.
	if r := other.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(mine, 0)}); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("another sign-in confirming the user's secret: %d %s, want 400", r.StatusCode, r.Body)
	}
	if r := user.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(mine, 0)}); r.StatusCode != 200 {
		t.Fatalf("the user confirms their own secret: %d %s", r.StatusCode, r.Body)
	}
	// Confirmed first, so it wins: the other sign-in's enrollment is over,
	// and its seed opens nothing.
	if r := other.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(seed, 1)}); r.StatusCode == 200 {
		t.Fatalf("the other sign-in confirmed its seed after the user enrolled: %s", r.Body)
	}
	e.clock.Advance(30 * time.Second)
	later := e.client()
	if r := later.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword}); r.JSON["status"] != "2fa_required" {
		t.Fatalf("login after enrollment: %d %s", r.StatusCode, r.Body)
	}
	if r := later.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(seed, 0)}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a code from the other sign-in's seed: %d %s, want 401", r.StatusCode, r.Body)
	}
}

func TestAccount_ReEnrollKeepsOldSecretUntilConfirmed(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	oldSecret, _ := c.enroll("alice")
	// No new secret without the password (SPEC §4 rule 21).
	if r := c.getJSON("/.totp-auth/setup"); r.StatusCode != http.StatusForbidden || r.JSON["error"] != "password_required" {
		t.Fatalf("re-enroll without the password: %d %s", r.StatusCode, r.Body)
	}
	r := c.postJSON("/.totp-auth/setup", map[string]string{"password": testPassword})
	if r.StatusCode != 200 {
		t.Fatalf("password step: %d %s", r.StatusCode, r.Body)
	}
	newSecret := r.JSON["secret"].(string)
	if newSecret == oldSecret {
		t.Fatal("re-enrollment reused the old secret")
	}
	if acct, _ := e.store.Account("alice"); acct.TOTPSecret != oldSecret {
		t.Fatal("old secret replaced before confirmation")
	}
	e.clock.Advance(30 * time.Second)
	r = c.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(newSecret, 0)})
	if r.StatusCode != 200 {
		t.Fatalf("re-enroll: %d %s", r.StatusCode, r.Body)
	}
	if acct, _ := e.store.Account("alice"); acct.TOTPSecret != newSecret {
		t.Fatal("new secret not in place after confirmation")
	}
}
