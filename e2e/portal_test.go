package e2e_test

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// signInAtPortal enrolls user at the portal over the JSON API, starting
// from login with redirect (an absolute URL of an app), and checks that
// the flow ends there. Afterwards c's jar holds the session cookie for the
// parent domain.
func signInAtPortal(t *testing.T, s *portalSetup, c *client, user, redirect string) {
	t.Helper()
	p := c.at(s.portalURL())
	r := p.api("POST", "login", map[string]string{"username": user, "password": testPassword, "redirect": redirect})
	expect(t, "POST login", r, http.StatusOK)
	if got := r.json(t)["redirect"]; got != redirect {
		t.Fatalf("login answers redirect %v, want the app's URL %s", got, redirect)
	}
	r = p.api("GET", "setup", nil)
	expect(t, "GET setup", r, http.StatusOK)
	secret, _ := r.json(t)["secret"].(string)
	r = p.api("POST", "setup", map[string]string{"code": totp(t, secret, time.Now())})
	expect(t, "POST setup", r, http.StatusOK)
	u, _ := url.Parse(s.portalURL())
	for _, ck := range p.http.Jar.Cookies(u) {
		if ck.Name == "totp_auth_session" {
			return
		}
	}
	t.Fatal("no session cookie after sign-in")
}

func loginLocation(s *portalSetup, target string) string {
	return s.portalURL() + prefix + "/login?redirect=" + url.QueryEscape(target)
}

func TestPortal_CaddyForwardAuthSendsToThePortalAndLetsSignedInUsersThrough(t *testing.T) {
	t.Parallel()
	s := startPortal(t, "allow_groups admins staff")
	c := hostClient(t, s.appURL(), nil)

	target := s.appURL() + "/page?x=1"
	r := c.do("GET", "/page?x=1", nil, "Accept", "text/html,application/xhtml+xml")
	if r.status != http.StatusFound || r.header.Get("Location") != loginLocation(s, target) {
		t.Fatalf("browser without a session: %d Location %q, want 302 %s", r.status, r.header.Get("Location"), loginLocation(s, target))
	}
	r = c.do("GET", "/page?x=1", nil, "Accept", "application/json")
	if r.status != http.StatusUnauthorized || r.header.Get("Location") != loginLocation(s, target) {
		t.Fatalf("API client without a session: %d Location %q, want 401 with the same Location", r.status, r.header.Get("Location"))
	}
	if n := s.up.count(); n != 0 {
		t.Fatalf("%d requests reached the upstream without a session", n)
	}

	signInAtPortal(t, s, c, "alice", target)
	r = c.do("GET", "/page?x=1", nil, "Accept", "application/json",
		"Remote-User", "root", "Remote-Groups", "root", "remote-groups", "root", "Remote_Groups", "root")
	expect(t, "signed-in request through forward_auth", r, http.StatusOK)
	got := recordedOf(t, r)
	if got.URI != "/page?x=1" {
		t.Errorf("upstream got %s, want /page?x=1", got.URI)
	}
	if id := identity(got, "Remote-User"); len(id) != 1 || id[0] != "Remote-User: alice" {
		t.Errorf("upstream got user headers %q, want only Remote-User: alice", id)
	}
	if id := identity(got, "Remote-Groups"); len(id) != 1 || id[0] != "Remote-Groups: admins,staff" {
		t.Errorf("upstream got group headers %q, want only Remote-Groups: admins,staff", id)
	}

	// The per-app policy on wiki.portal.test lets only admins in.
	wiki := c.at(s.wikiURL())
	expect(t, "alice on the admins-only wiki", wiki.do("GET", "/", nil, "Accept", "application/json"), http.StatusOK)
	bob := hostClient(t, s.wikiURL(), nil)
	signInAtPortal(t, s, bob, "bob", s.wikiURL()+"/")
	before := s.up.count()
	r = bob.do("GET", "/", nil, "Accept", "application/json")
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), `"forbidden"`) {
		t.Fatalf("bob on the admins-only wiki: %d %s, want 403 forbidden", r.status, r.body)
	}
	expect(t, "bob on the app", bob.at(s.appURL()).do("GET", "/", nil, "Accept", "application/json"), http.StatusOK)

	// carol is in neither group the portal lets through: a page that names
	// her, and a way to the portal to sign out or switch.
	carol := hostClient(t, s.appURL(), nil)
	signInAtPortal(t, s, carol, "carol", s.appURL()+"/")
	r = carol.do("GET", "/", nil, "Accept", "text/html")
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "carol") ||
		!strings.Contains(string(r.body), s.portalURL()+prefix+"/switch?redirect=") {
		t.Fatalf("carol through forward_auth: %d, want a 403 page naming her with a link to the portal\n%s", r.status, r.body)
	}
	if s.up.count() != before+1 {
		t.Fatalf("a forbidden request reached the upstream")
	}
	// On the portal itself she gets the same 403, and the switch page.
	r = carol.at(s.portalURL()).do("GET", prefix+"/switch?redirect="+url.QueryEscape(s.appURL()+"/"), nil, "Accept", "text/html")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "Sign in as someone else") {
		t.Fatalf("switch page: %d\n%s", r.status, r.body)
	}
}

func TestPortal_NginxAuthRequestSendsToThePortalAndLetsSignedInUsersThrough(t *testing.T) {
	t.Parallel()
	s := startPortal(t)
	s.startNginx(t)
	c := hostClient(t, s.nginxURL(), nil)

	target := s.nginxURL() + "/page?x=1"
	r := c.do("GET", "/page?x=1", nil, "Accept", "text/html")
	if r.status != http.StatusFound || r.header.Get("Location") != loginLocation(s, target) {
		t.Fatalf("without a session: %d Location %q, want 302 %s (error_page 401)", r.status, r.header.Get("Location"), loginLocation(s, target))
	}
	if n := s.up.count(); n != 0 {
		t.Fatalf("%d requests reached the upstream without a session", n)
	}

	signInAtPortal(t, s, c, "bob", target)
	r = c.do("GET", "/page?x=1", nil, "Accept", "application/json", "Remote-User", "root", "Remote-Groups", "root")
	expect(t, "signed-in request through auth_request", r, http.StatusOK)
	got := recordedOf(t, r)
	if id := identity(got, "Remote-User"); len(id) != 1 || id[0] != "Remote-User: bob" {
		t.Errorf("upstream got user headers %q, want only Remote-User: bob", id)
	}
	if id := identity(got, "Remote-Groups"); len(id) != 1 || id[0] != "Remote-Groups: staff" {
		t.Errorf("upstream got group headers %q, want only Remote-Groups: staff", id)
	}
	before := s.up.count()
	if r := c.do("GET", "/admin/", nil, "Accept", "text/html"); r.status != http.StatusForbidden {
		t.Fatalf("bob on /admin/ (allow_groups=admins): %d, want 403", r.status)
	}
	if s.up.count() != before {
		t.Fatal("a forbidden request reached the upstream")
	}
	alice := hostClient(t, s.nginxURL(), nil)
	signInAtPortal(t, s, alice, "alice", s.nginxURL()+"/admin/")
	expect(t, "alice on /admin/", alice.do("GET", "/admin/", nil, "Accept", "application/json"), http.StatusOK)
}

// verifyDirect asks the portal's verify endpoint directly, from source
// address from, with c's cookies and hdr (name/value pairs).
func verifyDirect(t *testing.T, s *portalSetup, c *client, from, path string, hdr ...string) response {
	t.Helper()
	v := hostClient(t, s.portalURL(), c.http.Jar)
	v.http.Transport = &http.Transport{DialContext: loopbackDialer(from), DisableKeepAlives: true}
	return v.do("GET", prefix+"/"+path, nil, hdr...)
}

func forwardedFor(s *portalSetup, uri string) []string {
	return []string{"X-Forwarded-Method", "GET", "X-Forwarded-Proto", "http",
		"X-Forwarded-Host", strings.TrimPrefix(s.appURL(), "http://"), "X-Forwarded-Uri", uri, "Accept", "application/json"}
}

// oauth2-proxy CVE-2026-40575: a spoofed X-Forwarded-Uri was believed from
// any caller. Through real Caddy: a caller outside trusted_proxies gets
// 403 even with a valid session; the same request from the trusted proxy
// address passes.
func TestPortal_CVE_2026_40575_CallerOutsideTrustedProxiesGets403(t *testing.T) {
	t.Parallel()
	s := startPortal(t)
	c := hostClient(t, s.appURL(), nil)
	signInAtPortal(t, s, c, "alice", s.appURL()+"/")
	if _, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		t.Fatalf("this test needs 127.0.0.2 on the loopback interface: %v", err)
	}
	r := verifyDirect(t, s, c, "127.0.0.2", "verify", forwardedFor(s, "/")...)
	if r.status != http.StatusForbidden || r.header.Get("Remote-User") != "" {
		t.Fatalf("verify from 127.0.0.2 (not a trusted proxy): %d Remote-User %q, want 403 and none", r.status, r.header.Get("Remote-User"))
	}
	r = verifyDirect(t, s, c, "127.0.0.2", "verify/nginx", "X-Original-Method", "GET", "X-Original-URL", s.appURL()+"/", "Accept", "application/json")
	if r.status != http.StatusForbidden {
		t.Fatalf("verify/nginx from 127.0.0.2: %d, want 403", r.status)
	}
	r = verifyDirect(t, s, c, "127.0.0.1", "verify", forwardedFor(s, "/")...)
	if r.status != http.StatusOK || r.header.Get("Remote-User") != "alice" {
		t.Fatalf("verify from the trusted 127.0.0.1: %d Remote-User %q, want 200 alice", r.status, r.header.Get("Remote-User"))
	}
}

// The peers' CVEs through a real Caddy: every malformed request gets 400,
// with a valid session too; none is answered 2xx.
func TestPortal_MalformedForwardedRequestsGet400(t *testing.T) {
	t.Parallel()
	s := startPortal(t)
	c := hostClient(t, s.appURL(), nil)
	signInAtPortal(t, s, c, "alice", s.appURL()+"/")
	app := strings.TrimPrefix(s.appURL(), "http://")
	fw := func(method, proto, host, uri string) []string {
		return []string{"X-Forwarded-Method", method, "X-Forwarded-Proto", proto, "X-Forwarded-Host", host, "X-Forwarded-Uri", uri}
	}
	for _, tt := range []struct {
		name, path string
		hdr        []string
	}{
		{"tinyauth: empty X-Forwarded-Host", "verify", fw("GET", "http", "", "/")},
		{"tinyauth: empty X-Forwarded-Uri", "verify", fw("GET", "http", app, "")},
		{"tinyauth: no forwarded headers", "verify", nil},
		{"CVE-2021-32637: unparsable X-Original-URL", "verify/nginx", []string{"X-Original-Method", "GET", "X-Original-URL", s.appURL() + "/%zz"}},
		{"CVE-2021-32637: X-Original-URL not absolute", "verify/nginx", []string{"X-Original-Method", "GET", "X-Original-URL", "/admin"}},
		{"CVE-2021-21291: host suffix without a dot", "verify", fw("GET", "http", "evilportal.test", "/")},
		{"host outside the portal's domains", "verify", fw("GET", "http", "evil.example", "/")},
		{"non-letter method", "verify", fw("G3T", "http", app, "/")},
		{"contradictory headers", "verify", append(fw("GET", "http", app, "/"), "X-Original-URL", "http://other."+portalDomain+"/", "X-Original-Method", "GET")},
		// authentik CVE-2024-47070: an unparsable X-Forwarded-For skipped a
		// stage. With a bad URL it is still 400; it never helps.
		{"CVE-2024-47070: unparsable X-Forwarded-For", "verify", append(fw("GET", "http", app, "/%zz"), "X-Forwarded-For", "not-an-ip")},
	} {
		r := verifyDirect(t, s, c, "127.0.0.1", tt.path, append(tt.hdr, "Accept", "text/html")...)
		if r.status != http.StatusBadRequest || r.header.Get("Remote-User") != "" {
			t.Errorf("%s: %d Remote-User %q, want 400 and none", tt.name, r.status, r.header.Get("Remote-User"))
		}
	}
	// authentik CVE-2024-47070: without a session, an unparsable
	// X-Forwarded-For from the trusted proxy still gets no pass.
	anon := hostClient(t, s.appURL(), nil)
	r := verifyDirect(t, s, anon, "127.0.0.1", "verify", append(forwardedFor(s, "/"), "X-Forwarded-For", "not-an-ip")...)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("no session, unparsable X-Forwarded-For: %d, want 401", r.status)
	}
}

// A session used only through forward_auth stays alive while it is used
// (the portal remembers the activity; no Set-Cookie goes through) and
// ends once idle.
func TestPortal_IdleTimeSlidesThroughForwardAuth(t *testing.T) {
	t.Parallel()
	s := startPortal(t, "idle_timeout 4s")
	c := hostClient(t, s.appURL(), nil)
	signInAtPortal(t, s, c, "alice", s.appURL()+"/")
	for i := 0; i < 8; i++ { // 8 s of use, twice the idle timeout
		time.Sleep(time.Second)
		r := c.do("GET", "/", nil, "Accept", "application/json")
		expect(t, "request while in use", r, http.StatusOK)
		if sc := r.header.Values("Set-Cookie"); len(sc) != 0 {
			t.Fatalf("a request through forward_auth set cookies: %q", sc)
		}
	}
	time.Sleep(5 * time.Second)
	if r := c.do("GET", "/", nil, "Accept", "application/json"); r.status != http.StatusUnauthorized {
		t.Fatalf("after 5s idle (idle_timeout 4s): %d, want 401", r.status)
	}
}
