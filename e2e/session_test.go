package e2e_test

import (
	"net/http"
	"testing"
)

func TestLogoutAll_VoidsACopiedCookie(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"carol"}), "reverse_proxy "+up.addr())), port)
	owner := newClient(t, port)
	enroll(t, owner, "carol")

	thief := owner.copyCookies()
	if user, status := whoami(t, thief); user != "carol" {
		t.Fatalf("copied cookie before logout-all: user %q (status %d), want carol", user, status)
	}
	upstreamEcho(t, thief, "/before")

	r := owner.api("POST", "logout-all", map[string]string{})
	expect(t, "POST logout-all", r, http.StatusOK)
	if got := r.json(t)["status"]; got != "ok" {
		t.Errorf("POST logout-all: status %v, want ok", got)
	}

	hits := up.hits.Load()
	if r := thief.do("GET", "/after", nil, "Accept", "application/json"); r.status != http.StatusUnauthorized {
		t.Errorf("copied cookie after logout-all: status %d, want 401\n%s", r.status, r.body)
	}
	if _, status := whoami(t, owner); status != http.StatusUnauthorized {
		t.Errorf("owner's own session after logout-all: status %d, want 401", status)
	}
	if up.hits.Load() != hits {
		t.Error("a voided cookie reached the upstream")
	}
}
