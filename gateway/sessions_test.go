package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
)

// Sessions know what they prove (SPEC §4 rules 17–19).

// sibling starts a second gateway on e's store and clock, as a second site
// block naming the same database does.
func (e *env) sibling(mods ...func(*gateway.Config)) *env {
	e.t.Helper()
	shared := func(c *gateway.Config) {
		c.Store = e.store
		c.Clock = e.clock
	}
	o := newEnv(e.t, append([]func(*gateway.Config){shared}, mods...)...)
	o.store, o.clock = e.store, e.clock
	return o
}

// on returns a client of other holding c's cookies: both servers listen on
// 127.0.0.1, and cookies do not care for ports, as a shared host or
// cookie_domain would have it.
func (c *client) on(other *env) *client {
	return &client{e: other, jar: c.jar, http: c.http}
}

func optional2FA(c *gateway.Config) { c.Optional2FA = true }

func TestLevel_PasswordOnlySessionIsAPendingSignInOnABlockThatRequires2FA(t *testing.T) {
	lax := newEnv(t, optional2FA)
	strict := lax.sibling()
	c := lax.client()
	if r := c.login("alice", testPassword); r.JSON["status"] != "ok" {
		t.Fatalf("password-only sign-in on the lax block: %d %s", r.StatusCode, r.Body)
	}
	if r := c.getJSON("/app"); r.StatusCode != 200 {
		t.Fatalf("lax block refused its own session: %d %s", r.StatusCode, r.Body)
	}

	s := c.on(strict)
	r := s.getJSON("/app")
	if r.StatusCode != http.StatusUnauthorized || r.JSON["error"] != "enroll_required" {
		t.Fatalf("level-1 session on the strict block: %d %s, want 401 enroll_required", r.StatusCode, r.Body)
	}
	select {
	case h := <-strict.upstream:
		t.Fatalf("level-1 session reached the strict block's upstream as %q", h.Get("Remote-User"))
	default:
	}
	if r := s.getJSON("/.totp-auth/whoami"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("whoami on the strict block: %d, want 401", r.StatusCode)
	}
	if r := s.getHTML("/app?x=1"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/setup" {
		t.Fatalf("browser on the strict block: %d to %q, want 303 to the enrollment", r.StatusCode, r.Header.Get("Location"))
	}

	// The pending sign-in it was turned into gives the password again,
	// then enrolls, and the session it ends in passes.
	if r := s.getJSON("/.totp-auth/setup"); r.StatusCode != http.StatusForbidden || r.JSON["error"] != "password_required" {
		t.Fatalf("setup from the stepped-up session before the password: %d %s, want 403 password_required", r.StatusCode, r.Body)
	}
	r = s.postJSON("/.totp-auth/setup", map[string]string{"password": testPassword})
	if r.StatusCode != 200 {
		t.Fatalf("setup from the stepped-up session with the password: %d %s", r.StatusCode, r.Body)
	}
	secret := r.JSON["secret"].(string)
	if again := s.getJSON("/.totp-auth/setup"); again.StatusCode != 200 || again.JSON["secret"] != secret {
		t.Fatalf("setup again after the password: %d %s, want the same secret", again.StatusCode, again.Body)
	}
	if r := s.postJSON("/.totp-auth/setup", map[string]string{"code": strict.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("confirm: %d %s", r.StatusCode, r.Body)
	}
	if r := s.getJSON("/app"); r.StatusCode != 200 {
		t.Fatalf("level-2 session on the strict block: %d %s", r.StatusCode, r.Body)
	}
}

// A stolen password-only cookie, sent to a block that requires 2FA, does
// not let the thief enroll an authenticator of their own: enrollment asks
// for the password first, a wrong one counts, and no secret is shown or
// confirmed before it (SPEC §4 rule 21).
func TestLevel_StepUpToEnrollmentAsksThePasswordFirst(t *testing.T) {
	lax := newEnv(t, optional2FA)
	strict := lax.sibling()
	owner := lax.client()
	if r := owner.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword}); r.JSON["status"] != "ok" {
		t.Fatalf("password-only sign-in: %d %s", r.StatusCode, r.Body)
	}
	thief := strict.client()
	thief.jar.SetCookies(mustURL(strict.srv.URL), []*http.Cookie{owner.cookie("totp_auth_session")})
	if r := thief.getJSON("/app"); r.StatusCode != http.StatusUnauthorized || r.JSON["error"] != "enroll_required" {
		t.Fatalf("stolen level-1 cookie on the strict block: %d %s, want 401 enroll_required", r.StatusCode, r.Body)
	}
	r := thief.getJSON("/.totp-auth/setup")
	if r.StatusCode != http.StatusForbidden || r.JSON["error"] != "password_required" || strings.Contains(r.Body, "secret") {
		t.Fatalf("GET setup without the password: %d %s, want 403 password_required and no secret", r.StatusCode, r.Body)
	}
	if r := thief.getHTML("/.totp-auth/setup"); r.StatusCode != 200 || strings.Contains(r.Body, "otpauth") || !strings.Contains(r.Body, `name="password"`) {
		t.Fatalf("setup page without the password: %d, want the password form and no QR code\n%s", r.StatusCode, r.Body)
	}
	if r := thief.postJSON("/.totp-auth/setup", map[string]string{"code": "123456"}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("POST setup with a code before the password: %d %s, want 403", r.StatusCode, r.Body)
	}
	if r := thief.postJSON("/.totp-auth/setup", map[string]string{"password": "not it"}); r.StatusCode != http.StatusUnauthorized || r.JSON["error"] != "invalid_credentials" {
		t.Fatalf("POST setup with a wrong password: %d %s, want 401 invalid_credentials", r.StatusCode, r.Body)
	}
	a, err := strict.store.Account("alice")
	if err != nil {
		t.Fatal(err)
	}
	if a.Pending != nil || a.TOTPSecret != "" {
		t.Fatalf("alice's account after the thief's tries: pending %v, TOTP enabled %v; want neither", a.Pending != nil, a.TOTPSecret != "")
	}
	counters, err := strict.store.Counters()
	if err != nil {
		t.Fatal(err)
	}
	failures := 0
	for _, c := range counters {
		if c.Key == account.UserCounter.Key("alice") {
			failures = c.Failures
		}
	}
	if failures != 1 {
		t.Fatalf("the wrong password at setup counted %d failures, want 1", failures)
	}
}

func TestLevel_PasswordOnlySessionOfADatabaseUserOpensNoPageOfAStrictBlock(t *testing.T) {
	lax := newEnv(t, optional2FA)
	strict := lax.sibling()
	lax.store.SetPassword("carol", passwordHash(t))
	c := lax.client()
	if r := c.login("carol", testPassword); r.JSON["status"] != "ok" {
		t.Fatal(r.Body)
	}
	s := c.on(strict)
	if r := s.getHTML("/reports?q=1"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/setup" {
		t.Fatalf("level-1 session of a database user: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	for _, path := range []string{"/.totp-auth/account", "/.totp-auth/whoami", "/.totp-auth/backup-codes"} {
		if r := s.getJSON(path); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with a level-1 session on the strict block: %d, want 401", path, r.StatusCode)
		}
	}
}

func TestLevel_StrictBlockAsksAnEnrolledUserForTheSecondFactor(t *testing.T) {
	strict := newEnv(t)
	lax := strict.sibling(optional2FA)
	owner := strict.client()
	secret, _ := owner.enroll("alice")
	// alice turns 2FA off on the lax block (password + code): every
	// session she then makes there is level 1. She turns it on again on
	// the strict block; the lax block's sessions stay level 1.
	c := lax.client()
	lax.clock.Advance(30 * time.Second)
	c.login("alice", testPassword)
	if r := c.postJSON("/.totp-auth/2fa", map[string]string{"code": lax.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatal(r.Body)
	}
	lax.clock.Advance(30 * time.Second)
	if r := c.postJSON("/.totp-auth/disable", map[string]string{"password": testPassword, "code": lax.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("disable: %d %s", r.StatusCode, r.Body)
	}
	c2 := lax.client()
	c2.login("alice", testPassword)
	secret, _ = strict.client().enroll("alice")

	s := c2.on(strict)
	r := s.getJSON("/app")
	if r.StatusCode != http.StatusUnauthorized || r.JSON["error"] != "2fa_required" {
		t.Fatalf("level-1 session of an enrolled user on the strict block: %d %s, want 401 2fa_required", r.StatusCode, r.Body)
	}
	strict.clock.Advance(30 * time.Second)
	r = s.postJSON("/.totp-auth/2fa", map[string]string{"code": strict.code(secret, 0)})
	if r.StatusCode != 200 || r.JSON["redirect"] != "/app" {
		t.Fatalf("second factor after the step-up: %d %s, want 200 on to /app", r.StatusCode, r.Body)
	}
	if r := s.getJSON("/app"); r.StatusCode != 200 {
		t.Fatalf("after the second factor: %d %s", r.StatusCode, r.Body)
	}
}

func TestLevel_AdmitsComparesTheSessionLevelWithTheBlock(t *testing.T) {
	strict, lax := newEnv(t).gw, newEnv(t, optional2FA).gw
	for _, tc := range []struct {
		gw    *gateway.Gateway
		level gateway.Level
		want  bool
	}{
		{strict, gateway.LevelPassword, false},
		{strict, gateway.LevelTwoFactor, true},
		{lax, gateway.LevelPassword, true},
		{lax, gateway.LevelTwoFactor, true},
		{strict, 0, false},
		{lax, 0, false},
	} {
		if got := tc.gw.Admits(gateway.Session{User: "alice", Level: tc.level}); got != tc.want {
			t.Errorf("Admits(level %d) on a block requiring %d = %v, want %v", tc.level, tc.gw.RequiredLevel(), got, tc.want)
		}
	}
}

func TestConfigUser_ChangingTheHashEndsSessionsAndPendingSignIns(t *testing.T) {
	before := newEnv(t)
	c := before.client()
	secret, _ := c.enroll("alice")
	pending := before.client()
	before.clock.Advance(30 * time.Second)
	if r := pending.login("alice", testPassword); r.JSON["status"] != "2fa_required" {
		t.Fatal(r.Body)
	}

	// The same block after a reload with the same hash keeps both.
	same := before.sibling()
	if r := c.on(same).getJSON("/app"); r.StatusCode != 200 {
		t.Fatalf("session after a reload with the same hash: %d", r.StatusCode)
	}

	// A new hash of the same password: a reload that changes the line.
	newHash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	after := before.sibling(func(cfg *gateway.Config) { cfg.Users = map[string][]byte{"alice": newHash} })
	if r := c.on(after).getJSON("/app"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("session proven against the old hash: %d, want 401", r.StatusCode)
	}
	if r := pending.on(after).postJSON("/.totp-auth/2fa", map[string]string{"code": after.code(secret, 0)}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("pending sign-in from before the new hash: %d %s, want 401", r.StatusCode, r.Body)
	}
	// Signing in against the new hash works.
	fresh := after.client()
	fresh.signIn("alice", secret)
}

func TestPending_GenerationBumpEndsPendingSignIns(t *testing.T) {
	e := newEnv(t)
	e.store.SetPassword("dora", passwordHash(t))
	attacker := e.client()
	if r := attacker.login("dora", testPassword); r.JSON["status"] != "enroll_required" {
		t.Fatal(r.Body)
	}
	// The operator changes dora's password (`user passwd`), which raises
	// her generation.
	e.store.SetPassword("dora", passwordHash(t))
	if _, err := account.BumpGeneration(e.store, "dora"); err != nil {
		t.Fatal(err)
	}
	if r := attacker.getJSON("/.totp-auth/setup"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("pending enrollment from before the password change shows a secret: %d %s", r.StatusCode, r.Body)
	}
	if r := attacker.postJSON("/.totp-auth/setup", map[string]string{"code": "123456"}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("pending enrollment from before the password change: %d %s", r.StatusCode, r.Body)
	}
}

func TestSession_NoBlockAcceptsACookiePastTheExpiryItWasIssuedWith(t *testing.T) {
	short := newEnv(t, func(c *gateway.Config) { c.SessionTTL = 10 * time.Minute; c.IdleTimeout = 10 * time.Minute })
	long := short.sibling(func(c *gateway.Config) { c.SessionTTL = 12 * time.Hour; c.IdleTimeout = time.Hour })
	c := short.client()
	secret, _ := c.enroll("alice")
	c.signIn("alice", secret)
	l := c.on(long)
	if r := l.getJSON("/app"); r.StatusCode != 200 {
		t.Fatalf("fresh cookie on the long block: %d", r.StatusCode)
	}
	short.clock.Advance(9 * time.Minute)
	if r := l.getJSON("/app"); r.StatusCode != 200 {
		t.Fatalf("cookie within its own expiry: %d", r.StatusCode)
	}
	short.clock.Advance(2 * time.Minute)
	if r := l.getJSON("/app"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("cookie past the expiry it was issued with, on a block with a longer session_ttl: %d", r.StatusCode)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestWhoami_ExpiresIsTheEarliestEndOfTheSession(t *testing.T) {
	short := newEnv(t, optional2FA, func(c *gateway.Config) { c.SessionTTL, c.IdleTimeout = time.Hour, time.Hour })
	long := short.sibling(optional2FA, func(c *gateway.Config) { c.SessionTTL, c.IdleTimeout = 12*time.Hour, 12*time.Hour })
	c := short.client()
	signedIn := short.clock.Now()
	if r := c.login("alice", testPassword); r.JSON["status"] != "ok" {
		t.Fatalf("sign-in: %d %s", r.StatusCode, r.Body)
	}
	// The issuing block gave the cookie one hour; a block with a longer
	// session_ttl must neither accept it longer nor say it lives longer.
	want := signedIn.Add(time.Hour).UTC().Format(time.RFC3339)
	r := c.on(long).getJSON("/.totp-auth/whoami")
	if r.StatusCode != 200 || r.JSON["expires"] != want {
		t.Fatalf("whoami on the longer block: %d %s, want expires %s", r.StatusCode, r.Body, want)
	}
	short.clock.Advance(50 * time.Minute)
	if r := c.on(long).getJSON("/.totp-auth/whoami"); r.JSON["expires"] != want {
		t.Fatalf("whoami after 50 minutes: %s, want expires still %s (idle time does not end it first here)", r.Body, want)
	}
	short.clock.Advance(10 * time.Minute)
	if r := c.on(long).getJSON("/.totp-auth/whoami"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("whoami after the reported expiry: %d %s, want 401", r.StatusCode, r.Body)
	}
}

func TestSession_AbsoluteLifetimeIsEnforcedServerSide(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.SessionTTL = 2 * time.Hour; c.IdleTimeout = time.Hour })
	c := e.client()
	c.enroll("alice")
	for i := 0; i < 3; i++ { // active every 30 minutes: idle never runs out
		e.clock.Advance(30 * time.Minute)
		if r := c.getJSON("/app"); r.StatusCode != 200 {
			t.Fatalf("after %d×30m: %d", i+1, r.StatusCode)
		}
	}
	e.clock.Advance(30*time.Minute + time.Second)
	if r := c.getJSON("/app"); r.StatusCode != 401 {
		t.Fatalf("past session_ttl: %d", r.StatusCode)
	}
}

func TestSession_IdleTimeoutEndsAndActivitySlidesIt(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.IdleTimeout = 10 * time.Minute })
	c := e.client()
	c.enroll("alice")
	e.clock.Advance(9 * time.Minute)
	if r := c.getJSON("/app"); r.StatusCode != 200 {
		t.Fatalf("within idle timeout: %d", r.StatusCode)
	}
	e.clock.Advance(9 * time.Minute) // 18 min after sign-in, 9 after last use
	if r := c.getJSON("/app"); r.StatusCode != 200 {
		t.Fatalf("activity did not slide the idle timeout: %d", r.StatusCode)
	}
	e.clock.Advance(10*time.Minute + time.Second)
	if r := c.getJSON("/app"); r.StatusCode != 401 {
		t.Fatalf("past idle timeout: %d", r.StatusCode)
	}
}

func TestSession_CookieAttributes(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.login("alice", testPassword)
	secret := c.getJSON("/.totp-auth/setup").JSON["secret"].(string)
	r := c.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(secret, 0)})
	var found bool
	for _, ck := range r.Cookies() {
		if ck.Name == "totp_auth_session" {
			found = true
			if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.MaxAge <= 0 {
				t.Errorf("cookie attributes: %+v", ck)
			}
			if ck.Secure {
				t.Errorf("Secure set on a plain-HTTP response")
			}
		}
	}
	if !found {
		t.Fatal("no session cookie set")
	}
	if raw := r.Header.Values("Set-Cookie"); strings.Contains(strings.Join(raw, ";"), "alice") {
		t.Errorf("cookie value readable: %v", raw)
	}
	shared := newEnv(t, func(c *gateway.Config) { c.CookieDomain = "example.test" })
	r = shared.client().login("alice", testPassword)
	if ck := r.Cookies(); len(ck) == 0 || ck[0].Domain != "example.test" {
		t.Errorf("cookie_domain not applied: %v", r.Header.Values("Set-Cookie"))
	}
}

func TestSession_SecureCookieOnTLS(t *testing.T) {
	e := newEnv(t)
	tlsSrv := httptest.NewTLSServer(e.gw.Middleware(http.NotFoundHandler()))
	defer tlsSrv.Close()
	req, _ := http.NewRequest("POST", tlsSrv.URL+"/.totp-auth/login", strings.NewReader(`{"username":"alice","password":"`+testPassword+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := tlsSrv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ck := resp.Cookies(); len(ck) == 0 || !ck[0].Secure {
		t.Fatalf("cookie over TLS not Secure: %v", resp.Header.Values("Set-Cookie"))
	}
}

func TestSession_GarbageAndTamperedCookiesAreRefused(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	good := c.cookie("totp_auth_session").Value
	for _, v := range []string{"", "garbage", strings.Repeat("A", 5000), good[:len(good)-2] + "AA", "x" + good} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/app", nil)
		req.Header.Set("Accept", "application/json")
		req.AddCookie(&http.Cookie{Name: "totp_auth_session", Value: v})
		if r := e.client().do(req); r.StatusCode != 401 {
			t.Errorf("cookie %.20q…: %d", v, r.StatusCode)
		}
	}
}
