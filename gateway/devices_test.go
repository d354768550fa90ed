package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
)

const thirtyDays = 30 * 24 * time.Hour

func rememberOn(c *gateway.Config) { c.RememberDevice = thirtyDays }

// loginLater posts the password a TOTP step later (so that a code of
// the next sign-in is no replay) and returns the answer.
func (c *client) loginLater(user string) response {
	c.e.t.Helper()
	c.e.clock.Advance(30 * time.Second)
	return c.postJSON("/.totp-auth/login", map[string]string{"username": user, "password": testPassword})
}

// signInRemembered signs in with password and code and asks to remember
// the browser (a JSON true, as an API client sends it).
func (c *client) signInRemembered(user, secret string) {
	t := c.e.t
	t.Helper()
	if r := c.loginLater(user); r.JSON["status"] != "2fa_required" {
		t.Fatalf("login: %d %s", r.StatusCode, r.Body)
	}
	req, _ := http.NewRequest("POST", c.e.srv.URL+"/.totp-auth/2fa", strings.NewReader(`{"code":"`+c.e.code(secret, 0)+`","remember":true}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if r := c.do(req); r.StatusCode != http.StatusOK || r.JSON["status"] != "ok" {
		t.Fatalf("2fa: %d %s", r.StatusCode, r.Body)
	}
	if c.cookie("totp_auth_session_device") == nil {
		t.Fatal("no device cookie after asking to remember the browser")
	}
}

// deviceCookieHeader returns the Set-Cookie line of the device cookie.
func deviceCookieLine(h http.Header) string {
	for _, l := range h.Values("Set-Cookie") {
		if strings.HasPrefix(l, "totp_auth_session_device=") {
			return l
		}
	}
	return ""
}

func TestRememberDevice_NextSignInAsksOnlyThePassword(t *testing.T) {
	e := newEnv(t, rememberOn)
	laptop := e.browserAs(uaFirefoxLinux)
	secret, _ := laptop.enroll("alice")
	laptop.postJSON("/.totp-auth/logout", nil)
	laptop.signInRemembered("alice", secret)
	laptop.postJSON("/.totp-auth/logout", nil)

	r := laptop.loginLater("alice")
	if r.StatusCode != http.StatusOK || r.JSON["status"] != "ok" {
		t.Fatalf("login on the remembered browser: %d %s, want ok without a code", r.StatusCode, r.Body)
	}
	row := laptop.sessions()["Firefox on Linux"]
	if row["factor"] != "remembered_device" || row["level"] != float64(2) {
		t.Errorf("session = %v, want level 2 by remembered_device", row)
	}
	if n := e.logs.FilterField(zapString("event", "sign_in")).FilterField(zapString("method", "remembered_device")).Len(); n != 1 {
		t.Errorf("%d sign_in log lines with method remembered_device, want 1", n)
	}
	devices := laptop.getJSON("/.totp-auth/sessions").JSON["devices"].([]any)
	if len(devices) != 1 || devices[0].(map[string]any)["device"] != "Firefox on Linux" {
		t.Errorf("devices = %v", devices)
	}
	exp, _ := time.Parse(time.RFC3339, devices[0].(map[string]any)["expires"].(string))
	if d := exp.Sub(e.clock.Now()); d < thirtyDays-time.Hour || d > thirtyDays {
		t.Errorf("device expires in %v, want about 30 days", d)
	}
	// Another browser still needs the code.
	if r := e.browserAs(uaChromeWin).loginLater("alice"); r.JSON["status"] != "2fa_required" {
		t.Errorf("login on another browser: %s, want 2fa_required", r.Body)
	}
}

func TestRememberDevice_CookieIsHttpOnlyLaxAndLivesForTheSetting(t *testing.T) {
	e := newEnv(t, rememberOn)
	c := e.client()
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	c.loginLater("alice")
	r := c.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0), "remember": "true"})
	line := deviceCookieLine(r.Header)
	for _, want := range []string{"HttpOnly", "SameSite=Lax", "Max-Age=2592000", "Path=/"} {
		if !strings.Contains(line, want) {
			t.Errorf("device cookie %q lacks %s", line, want)
		}
	}
}

func TestRememberDevice_TheSecondFactorPageOffersIt(t *testing.T) {
	e := newEnv(t, rememberOn)
	c := e.client()
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	c.loginLater("alice")
	if page := c.getHTML("/.totp-auth/2fa").Body; !strings.Contains(page, `name="remember"`) || !strings.Contains(page, "Remember this device for 30 days") {
		t.Fatalf("2fa page lacks the checkbox:\n%s", page)
	}
	// The browser's form with the box ticked.
	page := c.getHTML("/.totp-auth/2fa").Body
	vals := map[string][]string{"code": {e.code(secret, 0)}, "remember": {"on"}, "form_token": {formValue(t, page, "form_token")}}
	if r := c.postForm("/.totp-auth/2fa", "/.totp-auth/2fa", vals); r.StatusCode != http.StatusSeeOther || deviceCookieLine(r.Header) == "" {
		t.Fatalf("2fa form with remember: %d, Set-Cookie %v", r.StatusCode, r.Header.Values("Set-Cookie"))
	}
}

func TestRememberDevice_OffByDefault(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	c.loginLater("alice")
	if page := c.getHTML("/.totp-auth/2fa").Body; strings.Contains(page, `name="remember"`) {
		t.Error("2fa page offers to remember the device though remember_device is off")
	}
	r := c.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0), "remember": "true"})
	if r.StatusCode != http.StatusOK || deviceCookieLine(r.Header) != "" {
		t.Errorf("2fa with remember where it is off: %d, Set-Cookie %v", r.StatusCode, r.Header.Values("Set-Cookie"))
	}
}

func TestRememberDevice_OnlyBlocksWithTheSettingHonourIt(t *testing.T) {
	e := newEnv(t, rememberOn)
	c := e.browserAs(uaFirefoxLinux)
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	c.signInRemembered("alice", secret)
	c.postJSON("/.totp-auth/logout", nil)
	// Another block on the same store and keys, without remember_device.
	other := newEnv(t, func(cfg *gateway.Config) {
		cfg.Store = e.store // and so its cookie keys
		cfg.Clock = e.clock
	})
	// The same browser: cookies of 127.0.0.1 go to either port.
	oc := &client{e: other, jar: c.jar, http: c.http}
	if r := oc.loginLater("alice"); r.JSON["status"] != "2fa_required" {
		t.Errorf("login on a block without remember_device: %s, want 2fa_required", r.Body)
	}
}

func TestRememberDevice_CookieAloneSignsNobodyIn(t *testing.T) {
	e := newEnv(t, rememberOn)
	c := e.client()
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	c.signInRemembered("alice", secret)
	c.postJSON("/.totp-auth/logout", nil)
	if c.signedIn() {
		t.Fatal("the device cookie passes the gate alone")
	}
	if r := c.getJSON("/.totp-auth/2fa"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("2fa with the device cookie alone: %d, want 401", r.StatusCode)
	}
	if r := c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": "wrong"}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong password with the device cookie: %d, want 401", r.StatusCode)
	}
}

func TestRememberDevice_AnotherUsersCookieSkipsNothing(t *testing.T) {
	e := newEnv(t, rememberOn)
	c := e.client()
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	c.signInRemembered("alice", secret)
	c.postJSON("/.totp-auth/logout", nil)
	bob := e.client()
	bob.enroll("bob")
	bob.postJSON("/.totp-auth/logout", nil)
	// Bob signs in on alice's remembered browser.
	if r := c.loginLater("bob"); r.JSON["status"] != "2fa_required" {
		t.Errorf("bob on alice's remembered browser: %s, want 2fa_required", r.Body)
	}
}

func TestRememberDevice_WrongPasswordsStillLockTheUser(t *testing.T) {
	e := newEnv(t, rememberOn, func(c *gateway.Config) { c.MaxFailures = 3 })
	c := e.client()
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	c.signInRemembered("alice", secret)
	c.postJSON("/.totp-auth/logout", nil)
	for range 3 {
		c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": "wrong"})
	}
	if r := c.loginLater("alice"); r.StatusCode != http.StatusTooManyRequests || r.JSON["error"] != "locked" {
		t.Errorf("right password on the remembered browser while locked: %d %s, want refused", r.StatusCode, r.Body)
	}
}

func TestRememberDevice_SurvivesLogoutAndEndingSessions(t *testing.T) {
	e := newEnv(t, rememberOn)
	c := e.browserAs(uaFirefoxLinux)
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	c.signInRemembered("alice", secret)
	r := c.postJSON("/.totp-auth/logout", nil)
	for _, l := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(l, "totp_auth_session_device=") {
			t.Errorf("logout touches the device cookie: %s", l)
		}
	}
	if r := c.loginLater("alice"); r.JSON["status"] != "ok" {
		t.Fatalf("after logout: %s, want ok", r.Body)
	}
	id := c.sessions()["Firefox on Linux"]["id"].(string)
	c.postJSON("/.totp-auth/sessions/end", map[string]string{"id": id})
	if r := c.loginLater("alice"); r.JSON["status"] != "ok" {
		t.Errorf("after ending the session: %s, want ok", r.Body)
	}
}

func TestRememberDevice_ForgottenByEveryWayThatEndsAllSessions(t *testing.T) {
	cases := map[string]func(e *env, c *client){
		"sign-out everywhere": func(e *env, c *client) { c.postJSON("/.totp-auth/logout-all", nil) },
		"passwd or signout": func(e *env, c *client) {
			if _, err := account.BumpGeneration(e.store, "alice"); err != nil {
				e.t.Fatal(err)
			}
		},
		"reset-2fa": func(e *env, c *client) {
			if err := e.store.UpdateAccount("alice", func(a *account.Account) error { return a.ResetTwoFactor() }); err != nil {
				e.t.Fatal(err)
			}
		},
		"Forget on the account page": func(e *env, c *client) {
			devices := c.getJSON("/.totp-auth/sessions").JSON["devices"].([]any)
			id := devices[0].(map[string]any)["id"].(string)
			if r := c.postJSON("/.totp-auth/devices/forget", map[string]string{"id": id}); r.StatusCode != http.StatusOK {
				e.t.Fatalf("forget: %d %s", r.StatusCode, r.Body)
			}
			if r := c.postJSON("/.totp-auth/devices/forget", map[string]string{"id": id}); r.StatusCode != http.StatusNotFound {
				e.t.Errorf("forget again: %d, want 404", r.StatusCode)
			}
		},
		"expiry": func(e *env, c *client) { e.clock.Advance(thirtyDays) },
	}
	for name, end := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, rememberOn)
			c := e.client()
			secret, _ := c.enroll("alice")
			c.postJSON("/.totp-auth/logout", nil)
			c.signInRemembered("alice", secret)
			end(e, c)
			c.postJSON("/.totp-auth/logout", nil)
			r := c.loginLater("alice")
			if r.JSON["status"] == "ok" {
				t.Errorf("after %s the device still skips the second factor", name)
			}
			acct, _ := e.store.Account("alice")
			if len(acct.DevicesInForce(e.clock.Now())) != 0 {
				t.Errorf("after %s devices remembered: %v", name, acct.Devices)
			}
		})
	}
}

func TestRememberDevice_ACopiedCookieOfAForgottenDeviceIsWorthless(t *testing.T) {
	e := newEnv(t, rememberOn)
	c := e.client()
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	c.signInRemembered("alice", secret)
	stolen := *c.cookie("totp_auth_session_device")
	devices := c.getJSON("/.totp-auth/sessions").JSON["devices"].([]any)
	c.postJSON("/.totp-auth/devices/forget", map[string]string{"id": devices[0].(map[string]any)["id"].(string)})
	thief := e.client()
	thief.jar.SetCookies(mustURL(e.srv.URL), []*http.Cookie{&stolen})
	if r := thief.loginLater("alice"); r.JSON["status"] != "2fa_required" {
		t.Errorf("a copy of a forgotten device's cookie: %s, want 2fa_required", r.Body)
	}
}

func TestRememberDevice_ForgottenWhenTheUserLineChanges(t *testing.T) {
	e := newEnv(t, rememberOn)
	c := e.browserAs(uaFirefoxLinux)
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	c.signInRemembered("alice", secret)
	// The same store after a reload with another hash on alice's line.
	newHash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	changed := newEnv(t, rememberOn, func(cfg *gateway.Config) {
		cfg.Store, cfg.Clock = e.store, e.clock
		cfg.Users = map[string][]byte{"alice": newHash}
	})
	changed.clock = e.clock // the clock its gateway reads
	same := &client{e: changed, jar: c.jar, http: c.http, ua: c.ua}
	if r := same.loginLater("alice"); r.JSON["status"] != "2fa_required" {
		t.Fatalf("login after the user line changed: %s, want 2fa_required", r.Body)
	}
	if r := same.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0)}); r.JSON["status"] != "ok" {
		t.Fatalf("2fa: %s", r.Body)
	}
	r := same.getJSON("/.totp-auth/sessions")
	if s, d := r.JSON["sessions"].([]any), r.JSON["devices"].([]any); len(s) != 1 || len(d) != 0 {
		t.Errorf("after the user line changed: sessions %v, devices %v; want the new session alone", s, d)
	}
}
