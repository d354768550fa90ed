package e2e_test

import (
	"net/http"
	"testing"
	"time"
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

func TestLogout_VoidsACopiedCookieButNotOtherSessions(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"dave"}), "reverse_proxy "+up.addr())), port)
	laptop := newClient(t, port)
	e := enroll(t, laptop, "dave")
	phone := newClient(t, port)
	expect(t, "password on the phone", login(phone, "dave", testPassword), http.StatusOK)
	expect(t, "code on the phone", phone.api("POST", "2fa", map[string]string{"code": totp(t, e.secret, e.codeTime.Add(30*time.Second))}), http.StatusOK)

	thief := laptop.copyCookies()
	expect(t, "POST logout", laptop.api("POST", "logout", map[string]string{}), http.StatusOK)
	if _, status := whoami(t, thief); status != http.StatusUnauthorized {
		t.Errorf("a cookie copied before logout: whoami %d, want 401", status)
	}
	if user, _ := whoami(t, phone); user != "dave" {
		t.Error("logout on the laptop ended the phone's session")
	}
}
