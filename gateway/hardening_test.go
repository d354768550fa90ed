package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

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
