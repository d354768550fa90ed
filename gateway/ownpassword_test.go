package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
)

// databaseUser stores name with testPassword, as `user add` does.
func databaseUser(e *env, name string) {
	e.t.Helper()
	if err := e.store.UpdateAccount(name, func(a *account.Account) error {
		a.SetPassword(passwordHash(e.t))
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
}

const newPassword = "plum umbrella seventeen"

func TestOwnPassword_ChangeEndsOtherSessionsAndPendingSignInsAndKeepsThisOne(t *testing.T) {
	e := newEnv(t)
	databaseUser(e, "dave")
	c := e.client()
	secret, _ := c.enroll("dave")
	other := e.client()
	other.signIn("dave", secret)
	pending := e.client()
	if r := pending.postJSON("/.totp-auth/login", map[string]string{"username": "dave", "password": testPassword}); r.JSON["status"] != "2fa_required" {
		t.Fatalf("a sign-in elsewhere: %d %s", r.StatusCode, r.Body)
	}
	e.clock.Advance(30 * time.Second)
	r := c.postJSON("/.totp-auth/password", map[string]string{"current": testPassword, "new": newPassword, "code": e.code(secret, 0)})
	if r.StatusCode != 200 || r.JSON["status"] != "ok" {
		t.Fatalf("change own password: %d %s, want 200 ok", r.StatusCode, r.Body)
	}
	if r := c.getJSON("/.totp-auth/whoami"); r.StatusCode != 200 || r.JSON["user"] != "dave" {
		t.Fatalf("the session that changed the password: %d %s, want it to go on", r.StatusCode, r.Body)
	}
	if r := other.getJSON("/.totp-auth/whoami"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another session after the change: %d, want 401", r.StatusCode)
	}
	e.clock.Advance(30 * time.Second)
	if r := pending.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0)}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a sign-in pending before the change: %d %s, want 401", r.StatusCode, r.Body)
	}
	fresh := e.client()
	if r := fresh.postJSON("/.totp-auth/login", map[string]string{"username": "dave", "password": testPassword}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the old password: %d, want 401", r.StatusCode)
	}
	if r := fresh.postJSON("/.totp-auth/login", map[string]string{"username": "dave", "password": newPassword}); r.JSON["status"] != "2fa_required" {
		t.Fatalf("the new password: %d %s, want 2fa_required", r.StatusCode, r.Body)
	}
	lines := e.logs.FilterField(zapString("event", "password_change")).FilterField(zapString("outcome", "ok")).All()
	if len(lines) != 1 || lines[0].ContextMap()["user"] != "dave" {
		t.Fatalf("audit lines of the change: %v, want one naming dave", lines)
	}
	for _, l := range e.logs.All() {
		if strings.Contains(toString(l.ContextMap())+l.Message, newPassword) {
			t.Fatalf("a log line holds the new password: %s %v", l.Message, l.ContextMap())
		}
	}
}

func TestOwnPassword_RefusalsCountAndSayWhy(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailures = 3 })
	databaseUser(e, "dave")
	c := e.client()
	secret, _ := c.enroll("dave")
	e.clock.Advance(30 * time.Second)
	change := func(current, next, code string) response {
		return c.postJSON("/.totp-auth/password", map[string]string{"current": current, "new": next, "code": code})
	}
	r := change(testPassword, "password1", e.code(secret, 0))
	if r.StatusCode != http.StatusBadRequest || r.JSON["error"] != "weak_password" || !strings.Contains(toString(r.JSON["reason"]), "most common passwords") {
		t.Fatalf("a common new password: %d %s, want 400 weak_password with the reason", r.StatusCode, r.Body)
	}
	if r := change(testPassword, "short", ""); r.JSON["error"] != "weak_password" || !strings.Contains(toString(r.JSON["reason"]), "shorter than 8") {
		t.Fatalf("a short new password: %d %s", r.StatusCode, r.Body)
	}
	if r := change("wrong password", newPassword, e.code(secret, 0)); r.StatusCode != http.StatusUnauthorized || r.JSON["error"] != "invalid_credentials" {
		t.Fatalf("a wrong current password: %d %s, want 401 invalid_credentials", r.StatusCode, r.Body)
	}
	if r := change(testPassword, newPassword, ""); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no code for a user with 2FA: %d %s, want 401", r.StatusCode, r.Body)
	}
	if r := change(testPassword, newPassword, "000000"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong code: %d %s, want 401", r.StatusCode, r.Body)
	}
	// Three failures lock the user: even everything right is refused.
	if r := change(testPassword, newPassword, e.code(secret, 0)); r.StatusCode != http.StatusTooManyRequests || r.JSON["error"] != "locked" {
		t.Fatalf("a right attempt while locked: %d %s, want 429 locked", r.StatusCode, r.Body)
	}
	if n := e.logs.FilterField(zapString("event", "password_change")).FilterField(zapString("outcome", "failure")).Len(); n != 3 {
		t.Fatalf("%d failure lines, want 3", n)
	}

	// A `user` line's password lives in the configuration.
	a := e.client()
	asecret, _ := a.enroll("alice")
	if r := a.postJSON("/.totp-auth/password", map[string]string{"current": testPassword, "new": newPassword, "code": e.code(asecret, 1)}); r.StatusCode != http.StatusConflict || r.JSON["error"] != "config_user" {
		t.Fatalf("a Caddyfile user: %d %s, want 409 config_user", r.StatusCode, r.Body)
	}
	// A request from another site is refused before anything is checked.
	req, _ := http.NewRequest("POST", e.srv.URL+"/.totp-auth/password", strings.NewReader(`{"current":"x","new":"y","code":"1"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	if r := a.do(req); r.StatusCode != http.StatusForbidden {
		t.Fatalf("a cross-site post: %d, want 403", r.StatusCode)
	}
	// Without a session there is nothing to change.
	if r := e.client().postJSON("/.totp-auth/password", map[string]string{"current": testPassword, "new": newPassword}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a session: %d, want 401", r.StatusCode)
	}
}

// Where 2FA is optional, a user without it changes the password with the
// current one alone.
func TestOwnPassword_UserWithoutSecondFactorNeedsNoCode(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.Optional2FA = true })
	databaseUser(e, "dave")
	c := e.client()
	if r := c.postJSON("/.totp-auth/login", map[string]string{"username": "dave", "password": testPassword}); r.JSON["status"] != "ok" {
		t.Fatalf("password-only sign-in: %d %s", r.StatusCode, r.Body)
	}
	if r := c.postJSON("/.totp-auth/password", map[string]string{"current": testPassword, "new": newPassword}); r.StatusCode != 200 {
		t.Fatalf("change without 2FA: %d %s", r.StatusCode, r.Body)
	}
}

// The page: a section on the account page for database users only; a
// refusal keeps it open with the reason in it; success ends on a page that
// says what happened (post/redirect/get).
func TestOwnPassword_AccountPageChangesItAndEndsOnAPageThatSaysSo(t *testing.T) {
	e := newEnv(t)
	databaseUser(e, "dave")
	c := e.client()
	secret, _ := c.enroll("dave")
	page := c.getHTML("/.totp-auth/account").Body
	if !strings.Contains(page, `action="/.totp-auth/password"`) || !strings.Contains(page, `autocomplete="new-password"`) {
		t.Fatalf("the account page of a database user has no password form:\n%s", page)
	}
	e.clock.Advance(30 * time.Second)
	r, _ := c.sendForm("/.totp-auth/account", "/.totp-auth/password", url.Values{"current": {testPassword}, "new": {"iloveyou"}, "code": {e.code(secret, 0)}})
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.Body, `<details class="more password" open>`) ||
		!strings.Contains(r.Body, "Your password was not changed: the password is one of the most common passwords") {
		t.Fatalf("a common password on the page: %d, want the section open with the reason\n%s", r.StatusCode, r.Body)
	}
	r, _ = c.sendForm("/.totp-auth/account", "/.totp-auth/password", url.Values{"current": {testPassword}, "new": {newPassword}, "code": {e.code(secret, 0)}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/done?what=password-changed" {
		t.Fatalf("the form: %d Location %q, want 303 to the done page\n%s", r.StatusCode, r.Header.Get("Location"), r.Body)
	}
	if r := c.getHTML(r.Header.Get("Location")); !strings.Contains(r.Body, "Your password is changed") || !strings.Contains(r.Body, "every other browser and device") {
		t.Fatalf("the page after the change says:\n%s", r.Body)
	}

	a := e.client()
	a.enroll("alice")
	if page := a.getHTML("/.totp-auth/account").Body; strings.Contains(page, `action="/.totp-auth/password"`) {
		t.Fatal("the account page offers a Caddyfile user to change a password kept in the configuration")
	}
}

func TestOwnPassword_TheSessionThatChangedItStaysListedAndTheOthersLeave(t *testing.T) {
	e := newEnv(t)
	databaseUser(e, "dave")
	c := e.client()
	secret, _ := c.enroll("dave")
	other := e.client()
	other.signIn("dave", secret)
	if r := c.getJSON("/.totp-auth/sessions"); len(r.JSON["sessions"].([]any)) != 2 {
		t.Fatalf("sessions before the change: %s, want two", r.Body)
	}
	e.clock.Advance(30 * time.Second)
	if r := c.postJSON("/.totp-auth/password", map[string]string{"current": testPassword, "new": newPassword, "code": e.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("change own password: %d %s", r.StatusCode, r.Body)
	}
	r := c.getJSON("/.totp-auth/sessions")
	list, _ := r.JSON["sessions"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["current"] != true {
		t.Fatalf("sessions after the change: %s, want only this one, marked current", r.Body)
	}
}
