package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/internal/trailertest"
	"golang.org/x/crypto/bcrypt"
)

// Sessions know what they prove (SPEC §4 rules 17–25), against a real Caddy.

// sameBrowser returns a client of the site on port that shares c's
// cookies, as a browser does for two sites of one host.
func (c *client) sameBrowser(port int) *client {
	other := newClient(c.t, port)
	other.http = c.http
	return other
}

func TestLevel_PasswordOnlySessionOfALaxBlockDoesNotPassAStrictOne(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	lax, strict := freePort(t), freePort(t)
	c.start(c.caddyfile("",
		site(lax, c.totpAuth("shared.db", []string{"frank"}, "require_2fa false"), "reverse_proxy "+up.addr())+
			site(strict, c.totpAuth("shared.db", []string{"frank"}), "reverse_proxy "+up.addr())),
		lax, strict)

	a := newClient(t, lax)
	r := a.api("POST", "login", map[string]string{"username": "frank", "password": testPassword})
	expect(t, "POST login on the lax block", r, http.StatusOK)
	if got := r.json(t)["status"]; got != "ok" {
		t.Fatalf("password-only sign-in: status %v, want ok", got)
	}
	upstreamEcho(t, a, "/lax")
	hits := up.hits.Load()

	b := a.sameBrowser(strict)
	r = b.do("GET", "/strict", nil, "Accept", "application/json")
	if r.status != http.StatusUnauthorized || r.json(t)["error"] != "enroll_required" {
		t.Fatalf("level-1 session on the block that requires 2FA: %d %s, want 401 enroll_required", r.status, r.body)
	}
	if up.hits.Load() != hits {
		t.Fatal("a password-only session reached the upstream of the block that requires 2FA")
	}
	if r := b.do("GET", "/strict", nil, "Accept", "text/html"); r.status != http.StatusSeeOther || r.header.Get("Location") != prefix+"/setup" {
		t.Fatalf("browser on the strict block: %d to %q, want 303 to the enrollment", r.status, r.header.Get("Location"))
	}
	// The step-up asks for the password again before any secret is shown
	// (SPEC §4 rule 21): the cookie alone may be a stolen one.
	expect(t, "GET setup after the step-up, before the password", b.api("GET", "setup", nil), http.StatusForbidden)
	r = b.api("POST", "setup", map[string]string{"password": testPassword})
	expect(t, "POST setup with the password after the step-up", r, http.StatusOK)
	secret, _ := r.json(t)["secret"].(string)
	expect(t, "POST setup", b.api("POST", "setup", map[string]string{"code": totp(t, secret, time.Now())}), http.StatusOK)
	upstreamEcho(t, b, "/strict")
}

func TestConfigUser_NewHashOnReloadEndsSessionsAndPendingSignIns(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	cfg := func(hash string) string {
		block := strings.Replace(c.totpAuth("totp.db", []string{"gina"}), testHash, hash, 1)
		return c.caddyfile("", site(port, block, "reverse_proxy "+up.addr()))
	}
	c.start(cfg(testHash), port)
	s := newClient(t, port)
	en := enroll(t, s, "gina")
	p := newClient(t, port)
	r := p.api("POST", "login", map[string]string{"username": "gina", "password": testPassword})
	expect(t, "POST login", r, http.StatusOK)

	// A reload that keeps the line keeps the session.
	if status, body, _ := c.reload(cfg(testHash)); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	if user, status := whoami(t, s); user != "gina" {
		t.Fatalf("after a reload with the same hash: %q %d", user, status)
	}

	// The same password, hashed again: the line changed.
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if status, body, _ := c.reload(cfg(string(h))); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	if _, status := whoami(t, s); status != http.StatusUnauthorized {
		t.Fatalf("session proven against the old hash: whoami %d, want 401", status)
	}
	r = p.api("POST", "2fa", map[string]string{"code": totp(t, en.secret, en.codeTime.Add(30*time.Second))})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("pending sign-in proven against the old hash: %d %s, want 401", r.status, r.body)
	}
}

func TestUpstream_NoIdentityTrailerAndNoOddlySpelledSessionCookie(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	type seen struct {
		Trailer http.Header
		Cookie  []string
	}
	got := make(chan seen, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s := seen{Trailer: r.Trailer.Clone(), Cookie: r.Header["Cookie"]}
		got <- s
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"ok": "yes"})
	}))
	t.Cleanup(up.Close)
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"hank"}), "reverse_proxy "+up.Listener.Addr().String())), port)
	b := newClient(t, port)
	enroll(t, b, "hank")
	var session string
	for _, ck := range b.http.Jar.Cookies(mustURL(t, b.base)) {
		if ck.Name == "totp_auth_session" {
			session = ck.Value
		}
	}

	// Trailers: a chunked body that ends with Remote-User: root.
	for _, name := range []string{"Remote-User", "Remote_User"} {
		req, err := trailertest.NewRequest("POST", b.base+"/upload", "payload", name, "root")
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Cookie", "totp_auth_session="+session)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("chunked upload with a session: %d", resp.StatusCode)
		}
		for k, v := range (<-got).Trailer {
			if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "remote-user") {
				t.Errorf("trailer %s reached the upstream as %s: %q", name, k, v)
			}
		}
	}

	// The session cookie with a space before '=': it authenticates, so it
	// must not go upstream either.
	r := b.do("GET", "/app", nil, "Accept", "application/json", "Cookie", "lang=en; totp_auth_session ="+session)
	expect(t, "GET with an oddly spelled session cookie", r, http.StatusOK)
	if s := <-got; strings.Contains(strings.Join(s.Cookie, ";"), session) {
		t.Errorf("the upstream got the session cookie: %q", s.Cookie)
	}
}

func TestAdminAPI_RefusesABodyThatIsNotJSON(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"ivy"}), "respond ok")), port)
	for _, ct := range []string{"text/plain", ""} {
		req, _ := http.NewRequest("POST", "http://"+c.admin+"/totp-auth/users/unlock", strings.NewReader(`{"user":"ivy"}`))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("POST unlock as %q without Origin: %d, want 415", ct, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+c.admin+"/totp-auth/users/unlock", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET unlock: %d, Allow %q, want 405 and Allow: POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
