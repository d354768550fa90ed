package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
)

// canceledStore fails SessionState with an error that wraps
// context.Canceled while on is set, as a database store does when it is
// closed under a request that is still being answered.
type canceledStore struct {
	account.Store
	on *atomic.Bool
}

func (s canceledStore) SessionState(user string) (account.SessionState, error) {
	if s.on.Load() {
		return account.SessionState{}, fmt.Errorf("session state: %w", context.Canceled)
	}
	return s.Store.SessionState(user)
}

// A store error that wraps context.Canceled is still an error: verify and
// the gate answer 500, never an empty 200 (which a forward-auth proxy
// would take for "signed in").
func TestVerify_CanceledStoreErrorIsNever2xx(t *testing.T) {
	var on atomic.Bool
	e := portalEnv(t, func(c *gateway.Config) { c.Store = canceledStore{Store: c.Store, on: &on} })
	c := signedIn(t, e, "alice")
	on.Store(true)
	for _, path := range []string{"verify", "verify/nginx"} {
		hdr := forwarded()
		if path == "verify/nginx" {
			hdr = originalHeaders()
		}
		if r := c.verify(path, hdr, "application/json"); r.StatusCode != http.StatusInternalServerError {
			t.Errorf("%s with a canceled store: %d %q, want 500", path, r.StatusCode, r.Body)
		}
	}
	if r := c.getJSON("/app"); r.StatusCode != http.StatusInternalServerError {
		t.Errorf("the gate with a canceled store: %d %q, want 500", r.StatusCode, r.Body)
	}
}

// A refused verify call logs the reason, not megabytes of what the client
// sent: the line stays short however long the original URL is.
func TestVerify_RefusalLogLineIsBounded(t *testing.T) {
	e := portalEnv(t)
	c := e.client()
	long := "/%zz" + strings.Repeat("a", 64<<10)
	if r := c.verify("verify", with(forwarded(), "X-Forwarded-Uri", long), "application/json"); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("an undecodable X-Forwarded-Uri: %d, want 400", r.StatusCode)
	}
	lines := e.logs.FilterMessageSnippet("totp_auth verify").All()
	if len(lines) != 1 {
		t.Fatalf("%d verify log lines, want 1", len(lines))
	}
	if n := len(fmt.Sprint(lines[0].ContextMap())); n > 2048 {
		t.Fatalf("the refusal's log line carries %d bytes of fields, want at most 2048", n)
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
