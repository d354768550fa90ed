package gateway_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
)

// Signing out: logout and logout-all end sessions on every block that
// shares the database (SPEC §3 flow 7, §4 rules 19 and 22).

func TestLogoutAll_MakesACopiedCookieUseless(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	copied := c.cookie("totp_auth_session").Value
	if r := c.postJSON("/.totp-auth/logout-all", nil); r.StatusCode != 200 || r.JSON["status"] != "ok" {
		t.Fatalf("logout-all: %d %s", r.StatusCode, r.Body)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/app", nil)
	req.Header.Set("Accept", "application/json")
	req.AddCookie(&http.Cookie{Name: "totp_auth_session", Value: copied})
	if r := e.client().do(req); r.StatusCode != 401 {
		t.Fatalf("copied cookie after logout-all: %d", r.StatusCode)
	}
}

func TestLogout_ClearsTheCookie(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	r := c.postJSON("/.totp-auth/logout", nil)
	if r.StatusCode != 200 || r.JSON["status"] != "ok" {
		t.Fatalf("logout: %d %s", r.StatusCode, r.Body)
	}
	if c.cookie("totp_auth_session") != nil {
		t.Fatal("session cookie still held")
	}
}

func TestLogout_MakesACopiedCookieUseless(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	secret, _ := c.enroll("alice")
	other := e.client()
	other.signIn("alice", secret) // a second session of alice, on another device
	copied := c.cookie("totp_auth_session").Value
	if r := c.postJSON("/.totp-auth/logout", nil); r.StatusCode != 200 {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/app", nil)
	req.Header.Set("Accept", "application/json")
	req.AddCookie(&http.Cookie{Name: "totp_auth_session", Value: copied})
	if r := e.client().do(req); r.StatusCode != 401 {
		t.Fatalf("copied cookie after logout: %d, want 401", r.StatusCode)
	}
	if r := other.getJSON("/app"); r.StatusCode != 200 {
		t.Fatalf("logout ended the other device's session too: %d", r.StatusCode)
	}
}

// A logout on another block ends a session that verify keeps alive on the
// portal, although that block sees the cookie idle past its timeout: the
// portal remembers idle time the cookie does not carry (SPEC §4 rule 22,
// §12).
func TestLogout_OnAnotherBlockEndsASessionVerifyKeepsAlive(t *testing.T) {
	portal := portalEnv(t)
	plain := portal.sibling()
	c := signedIn(t, portal, "alice")
	for i := 0; i < 4; i++ {
		portal.clock.Advance(30 * time.Minute)
		if r := c.verify("verify", forwarded(), "application/json"); r.StatusCode != 200 {
			t.Fatalf("verify after %d half hours: %d", i+1, r.StatusCode)
		}
	}
	stolen := c.cookie("totp_auth_session")
	if r := c.on(plain).postJSON("/.totp-auth/logout", nil); r.StatusCode != 200 {
		t.Fatalf("logout on the plain block: %d %s", r.StatusCode, r.Body)
	}
	thief := portal.client()
	u, _ := url.Parse(portal.srv.URL)
	thief.jar.SetCookies(u, []*http.Cookie{stolen})
	if r := thief.verify("verify", forwarded(), "application/json"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("verify with a cookie logged out on another block: %d, want 401", r.StatusCode)
	}
}

// Posting logout again and again with one copied cookie revokes that one
// session once: it cannot fill the user's revocations and so end every
// other session of the user.
func TestLogout_RepeatedWithOneCookieEndsNoOtherSession(t *testing.T) {
	e := newEnv(t)
	victim := e.client()
	secret, _ := victim.enroll("alice")
	copied := e.client()
	copied.signIn("alice", secret)
	stolen := copied.cookie("totp_auth_session")
	u, _ := url.Parse(e.srv.URL)
	for i := 0; i <= account.MaxRevokedSessions; i++ {
		copied.jar.SetCookies(u, []*http.Cookie{stolen})
		if r := copied.postJSON("/.totp-auth/logout", nil); r.StatusCode != 200 {
			t.Fatalf("logout %d: %d %s", i, r.StatusCode, r.Body)
		}
	}
	if r := victim.getJSON("/app"); r.StatusCode != 200 {
		t.Fatalf("the user's other session after %d logouts of one cookie: %d, want 200", account.MaxRevokedSessions+1, r.StatusCode)
	}
}

func TestLogout_StaysInForceOnABlockWithALongerSessionTTL(t *testing.T) {
	long := newEnv(t, func(c *gateway.Config) { c.SessionTTL = 12 * time.Hour; c.IdleTimeout = time.Hour })
	short := long.sibling(func(c *gateway.Config) { c.SessionTTL = time.Minute; c.IdleTimeout = time.Minute })
	owner := long.client()
	secret, _ := owner.enroll("alice")
	thief := long.client()
	thief.signIn("alice", secret)
	stolen := thief.cookie("totp_auth_session")

	// The thief's victim signs out on the short block, within its minute.
	victim := &client{e: short, jar: thief.jar, http: thief.http}
	if r := victim.postJSON("/.totp-auth/logout", nil); r.StatusCode != 200 {
		t.Fatalf("logout: %d %s", r.StatusCode, r.Body)
	}
	// A minute and more later another logout prunes what is over...
	long.clock.Advance(2 * time.Minute)
	if r := owner.postJSON("/.totp-auth/logout", nil); r.StatusCode != 200 {
		t.Fatal(r.Body)
	}
	// ...and the copy taken before the logout still does not pass the
	// long block, whose twelve hours it was issued with.
	replay := long.client()
	replay.jar.SetCookies(mustURL(long.srv.URL), []*http.Cookie{stolen})
	if r := replay.getJSON("/app"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("cookie ended by logout on the short block passes the long one: %d", r.StatusCode)
	}
}

func TestLogout_OnABlockWhoseTTLIsOverStillEndsTheSessionEverywhere(t *testing.T) {
	long := newEnv(t, func(c *gateway.Config) { c.SessionTTL = 12 * time.Hour; c.IdleTimeout = time.Hour })
	short := long.sibling(func(c *gateway.Config) { c.SessionTTL = time.Minute; c.IdleTimeout = time.Minute })
	c := long.client()
	secret, _ := c.enroll("alice")
	c.signIn("alice", secret)
	copied := c.cookie("totp_auth_session")
	long.clock.Advance(10 * time.Minute)
	if r := (&client{e: short, jar: c.jar, http: c.http}).postJSON("/.totp-auth/logout", nil); r.StatusCode != 200 {
		t.Fatal(r.Body)
	}
	replay := long.client()
	replay.jar.SetCookies(mustURL(long.srv.URL), []*http.Cookie{copied})
	if r := replay.getJSON("/app"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("session logged out on a block it had outlived still passes the long block: %d", r.StatusCode)
	}
}
