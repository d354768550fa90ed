package e2e_test

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// protectedSite is a site whose /public/ path goes straight to the
// upstream (the control: it shows what the upstream would receive without
// totp_auth) and everything else through totp_auth, with the placeholder
// {http.auth.user.id} passed on as X-Auth-Id.
func protectedSite(port int, totpAuth string, up *upstream) string {
	return site(port,
		"handle /public/* {\n\t\treverse_proxy "+up.addr()+"\n\t}",
		"handle {\n\t"+totpAuth+"\n\t\treverse_proxy "+up.addr()+" {\n\t\t\theader_up X-Auth-Id {http.auth.user.id}\n\t\t}\n\t}")
}

func TestJSONFlow_EnrollSignOutAndSignInWithTOTP(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	// The server keeps client headers spelled Remote_User (Caddy drops them
	// by default), so that stripping them is proven to be totp_auth's work.
	globals := fmt.Sprintf("\tservers 127.0.0.1:%d {\n\t\texpected_underscore_headers Remote_User\n\t}\n", port)
	c.start(c.caddyfile(globals,
		protectedSite(port, c.totpAuth("totp.db", []string{"alice"}, `issuer "E2E Lab"`), up)), port)
	b := newClient(t, port)

	// Password: enrollment required, redirect sanitised and passed on.
	r := b.api("POST", "login", map[string]string{"username": "alice", "password": testPassword, "redirect": "/after?x=1"})
	expect(t, "POST login", r, http.StatusOK)
	if got := r.json(t); got["status"] != "enroll_required" || got["redirect"] != "/after?x=1" {
		t.Fatalf("POST login = %s, want status enroll_required and redirect /after?x=1", r.body)
	}

	// A pending cookie is no session.
	if r := b.do("GET", "/app", nil, "Accept", "application/json"); r.status != http.StatusUnauthorized {
		t.Fatalf("GET /app with a pending cookie: status %d, want 401", r.status)
	}
	if n := up.hits.Load(); n != 0 {
		t.Fatalf("upstream reached before the second factor (%d requests)", n)
	}

	// Enrollment: secret, URI and a QR code of exactly that URI.
	r = b.api("GET", "setup", nil)
	expect(t, "GET setup", r, http.StatusOK)
	setup := r.json(t)
	secret, _ := setup["secret"].(string)
	uri, _ := setup["otpauth_uri"].(string)
	qr, _ := setup["qr_png"].(string)
	if secret == "" || uri == "" || qr == "" {
		t.Fatalf("GET setup lacks secret, otpauth_uri or qr_png: %s", r.body)
	}
	if got := decodeQR(t, qr); got != uri {
		t.Errorf("QR code reads %q, want otpauth_uri %q", got, uri)
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("otpauth_uri: %v", err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" {
		t.Errorf("otpauth_uri %q is not otpauth://totp/", uri)
	}
	if label := strings.TrimPrefix(u.Path, "/"); label != "E2E Lab:alice" {
		t.Errorf("otpauth_uri label = %q, want %q", label, "E2E Lab:alice")
	}
	if q := u.Query(); q.Get("issuer") != "E2E Lab" || q.Get("secret") != secret {
		t.Errorf("otpauth_uri parameters issuer=%q secret matches=%v, want issuer \"E2E Lab\" and the secret",
			q.Get("issuer"), q.Get("secret") == secret)
	}
	if again := b.api("GET", "setup", nil).json(t)["secret"]; again != secret {
		t.Error("a second GET setup changed the pending secret; a scanned QR code would no longer work")
	}

	// Confirmation with a code from oathtool: backup codes and a session.
	enrolledAt := time.Now()
	r = b.api("POST", "setup", map[string]string{"code": totp(t, secret, enrolledAt)})
	expect(t, "POST setup", r, http.StatusOK)
	confirm := r.json(t)
	if codes, _ := confirm["backup_codes"].([]any); confirm["status"] != "ok" || len(codes) != 10 {
		t.Fatalf("POST setup = %s, want status ok and 10 backup_codes", r.body)
	}
	if user, status := whoami(t, b); user != "alice" {
		t.Fatalf("whoami after enrollment: user %q (status %d), want alice", user, status)
	}

	// The upstream sees the user and no client-sent spelling of the header.
	spoof := []string{"Remote_User", "mallory", "remote-user", "mallory"}
	if got := identityHeaders(upstreamEcho(t, b, "/public/x", spoof...), "Remote-User"); len(got) == 0 {
		t.Fatal("control: the client's Remote_User did not reach the unprotected path, so this test proves nothing")
	}
	e := upstreamEcho(t, b, "/app/page?q=1", spoof...)
	if e.Path != "/app/page" || e.Query != "q=1" {
		t.Errorf("upstream got path %q query %q, want /app/page and q=1", e.Path, e.Query)
	}
	if got, want := identityHeaders(e, "Remote-User"), map[string][]string{"Remote-User": {"alice"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("upstream identity headers = %v, want %v", got, want)
	}
	if got := e.Headers["X-Auth-Id"]; len(got) != 1 || got[0] != "alice" {
		t.Errorf("placeholder {http.auth.user.id} = %v, want alice", got)
	}

	// Logout ends the session.
	r = b.api("POST", "logout", map[string]string{})
	expect(t, "POST logout", r, http.StatusOK)
	if _, status := whoami(t, b); status != http.StatusUnauthorized {
		t.Fatalf("whoami after logout: status %d, want 401", status)
	}

	// Second sign-in: the second factor is now required.
	r = b.api("POST", "login", map[string]string{"username": "alice", "password": testPassword})
	expect(t, "POST login again", r, http.StatusOK)
	if got := r.json(t)["status"]; got != "2fa_required" {
		t.Fatalf("second POST login: status %v, want 2fa_required\n%s", got, r.body)
	}
	// The enrollment's time step is used up (RFC 6238 §5.2).
	r = b.api("POST", "2fa", map[string]string{"code": totp(t, secret, enrolledAt)})
	if r.status != http.StatusUnauthorized || r.json(t)["error"] != "invalid_code" {
		t.Fatalf("replayed enrollment code: %d %s, want 401 invalid_code", r.status, r.body)
	}
	// The next step is within the default drift of one step.
	r = b.api("POST", "2fa", map[string]string{"code": totp(t, secret, enrolledAt.Add(30*time.Second))})
	expect(t, "POST 2fa", r, http.StatusOK)
	if got := r.json(t); got["status"] != "ok" || got["redirect"] != "/" {
		t.Errorf("POST 2fa = %s, want status ok and redirect /", r.body)
	}
	if user, status := whoami(t, b); user != "alice" {
		t.Fatalf("whoami after the second factor: user %q (status %d), want alice", user, status)
	}
	upstreamEcho(t, b, "/app")
}

func TestUserHeader_ConfiguredHeaderIsSetAndClientSpellingsStripped(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	globals := fmt.Sprintf("\tservers 127.0.0.1:%d {\n\t\texpected_underscore_headers X_Auth_User\n\t}\n", port)
	c.start(c.caddyfile(globals,
		protectedSite(port, c.totpAuth("totp.db", []string{"bob"}, "user_header X-Auth-User"), up)), port)
	b := newClient(t, port)
	enroll(t, b, "bob")

	spoof := []string{"X_Auth_User", "mallory", "x-auth-user", "mallory"}
	if got := identityHeaders(upstreamEcho(t, b, "/public/x", spoof...), "X-Auth-User"); len(got) == 0 {
		t.Fatal("control: the client's X_Auth_User did not reach the unprotected path, so this test proves nothing")
	}
	e := upstreamEcho(t, b, "/app", spoof...)
	if got, want := identityHeaders(e, "X-Auth-User"), map[string][]string{"X-Auth-User": {"bob"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("upstream identity headers = %v, want %v", got, want)
	}
	if got := identityHeaders(e, "Remote-User"); len(got) != 0 {
		t.Errorf("upstream got %v although user_header is X-Auth-User", got)
	}
}
