package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// The portal of these tests answers as auth.example.com for example.com;
// a caller is a trusted proxy when it says so in trustedMark (the tests'
// stand-in for Caddy's trusted_proxies).
const (
	portalHost  = "auth.example.com"
	trustedMark = "X-Test-Trusted-Proxy"
	appURL      = "https://app.example.com/wiki/page?x=1"
)

func portalEnv(t *testing.T, mods ...func(*gateway.Config)) *env {
	t.Helper()
	return portalEnvB(t, mods...)
}

func portalEnvB(t testing.TB, mods ...func(*gateway.Config)) *env {
	t.Helper()
	return newEnv(t, append([]func(*gateway.Config){func(c *gateway.Config) {
		c.PortalDomains = []string{"example.com"}
		c.Groups = map[string][]string{"admins": {"alice"}, "staff": {"alice", "bob"}}
		c.TrustedProxy = func(r *http.Request) bool { return r.Header.Get(trustedMark) == "yes" }
	}}, mods...)...)
}

// forwarded are the headers Caddy's forward_auth sends for a GET of appURL.
func forwarded() map[string]string {
	return map[string]string{
		"X-Forwarded-Method": "GET",
		"X-Forwarded-Proto":  "https",
		"X-Forwarded-Host":   "app.example.com",
		"X-Forwarded-Uri":    "/wiki/page?x=1",
	}
}

// original are the headers nginx's auth_request sends for a GET of appURL.
func originalHeaders() map[string]string {
	return map[string]string{"X-Original-Method": "GET", "X-Original-URL": appURL}
}

// verify asks the portal about a request, as a trusted proxy unless
// untrusted, with c's session cookie (if any) and the given headers. An
// empty value in hdr sends the header empty; a value "\x00omit" leaves it out.
func (c *client) verify(path string, hdr map[string]string, accept string, untrusted ...bool) response {
	c.e.t.Helper()
	req, _ := http.NewRequest("GET", c.e.srv.URL+"/.totp-auth/"+path, nil)
	req.Host = portalHost
	if len(untrusted) == 0 || !untrusted[0] {
		req.Header.Set(trustedMark, "yes")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	for k, v := range hdr {
		if v != "\x00omit" {
			req.Header[http.CanonicalHeaderKey(k)] = append(req.Header[http.CanonicalHeaderKey(k)], v)
		}
	}
	if ck := c.cookie("totp_auth_session"); ck != nil {
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	}
	// The jar would add cookies for the server's own address; this
	// request carries exactly the ones added above.
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return response{Response: resp, Body: b.String()}
}

func signedIn(t *testing.T, e *env, user string) *client {
	t.Helper()
	c := e.client()
	c.enroll(user)
	return c
}

func TestVerify_SignedInAnswers200WithUserGroupsAndNoStore(t *testing.T) {
	e := portalEnv(t)
	c := signedIn(t, e, "alice")
	for _, tt := range []struct {
		path string
		hdr  map[string]string
	}{{"verify", forwarded()}, {"verify/nginx", originalHeaders()}} {
		r := c.verify(tt.path, tt.hdr, "text/html")
		if r.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tt.path, r.StatusCode, r.Body)
		}
		if got := r.Header.Get("Remote-User"); got != "alice" {
			t.Errorf("%s: Remote-User %q, want alice", tt.path, got)
		}
		if got := r.Header.Get("Remote-Groups"); got != "admins,staff" {
			t.Errorf("%s: Remote-Groups %q, want admins,staff", tt.path, got)
		}
		if got := r.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", tt.path, got)
		}
		if sc := r.Header.Values("Set-Cookie"); len(sc) != 0 {
			t.Errorf("%s: a verify answer sets cookies: %q", tt.path, sc)
		}
	}
}

func TestVerify_NotSignedInIsSentToThePortalLogin(t *testing.T) {
	e := portalEnv(t)
	c := e.client()
	want := "http://" + portalHost + "/.totp-auth/login?redirect=" + url.QueryEscape(appURL)
	for _, tt := range []struct {
		path, accept string
		status       int
	}{
		{"verify", "text/html,application/xhtml+xml", http.StatusFound},
		{"verify", "application/json", http.StatusUnauthorized},
		{"verify", "", http.StatusUnauthorized},
		{"verify/nginx", "text/html", http.StatusUnauthorized},
		{"verify/nginx", "application/json", http.StatusUnauthorized},
	} {
		hdr := forwarded()
		if tt.path == "verify/nginx" {
			hdr = originalHeaders()
		}
		r := c.verify(tt.path, hdr, tt.accept)
		if r.StatusCode != tt.status || r.Header.Get("Location") != want {
			t.Errorf("%s (Accept %q): %d Location %q, want %d %q", tt.path, tt.accept, r.StatusCode, r.Header.Get("Location"), tt.status, want)
		}
	}
}

// The login page takes the Location of a verify answer: an absolute URL
// to a portal domain survives the whole sign-in and is where it ends.
func TestVerify_SignInEndsAtTheAppsAbsoluteURL(t *testing.T) {
	e := portalEnv(t)
	c := e.client()
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	e.clock.Advance(30 * time.Second)
	r := c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword, "redirect": appURL})
	if r.StatusCode != 200 || r.JSON["redirect"] != appURL {
		t.Fatalf("login: %d %s", r.StatusCode, r.Body)
	}
	r = c.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0)})
	if r.StatusCode != 200 || r.JSON["redirect"] != appURL {
		t.Fatalf("2fa: %d %s, want redirect %s", r.StatusCode, r.Body, appURL)
	}
	for _, evil := range []string{"https://evilexample.com/", "https://app.example.com@evil.net/", "https://evil.net/"} {
		r := c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword, "redirect": evil})
		if r.JSON["redirect"] != "/" {
			t.Errorf("login with redirect %q answered redirect %v, want /", evil, r.JSON["redirect"])
		}
	}
}

// A verify answer cannot set a cookie (the proxy drops Set-Cookie from a
// 2xx), so the server remembers the activity: a session used only through
// verify stays alive for as long as it is used, and ends when it is not.
func TestVerify_IdleTimeSlidesWithoutSetCookie(t *testing.T) {
	e := portalEnv(t)
	c := signedIn(t, e, "alice")
	for i := 0; i < 4; i++ {
		e.clock.Advance(45 * time.Minute) // idle_timeout is 1h
		r := c.verify("verify", forwarded(), "application/json")
		if r.StatusCode != 200 {
			t.Fatalf("verify after %d×45m of use: %d %s", i+1, r.StatusCode, r.Body)
		}
		if len(r.Header.Values("Set-Cookie")) != 0 {
			t.Fatal("verify answered with Set-Cookie")
		}
	}
	e.clock.Advance(61 * time.Minute)
	if r := c.verify("verify", forwarded(), "application/json"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("verify after 61m idle: %d, want 401", r.StatusCode)
	}
}

func TestVerify_SlidingNeverOutlivesSessionTTL(t *testing.T) {
	e := portalEnv(t)
	c := signedIn(t, e, "alice")
	for elapsed := time.Duration(0); elapsed < 12*time.Hour-30*time.Minute; elapsed += 30 * time.Minute {
		e.clock.Advance(30 * time.Minute)
		if r := c.verify("verify", forwarded(), "application/json"); r.StatusCode != 200 {
			t.Fatalf("verify at %s: %d", elapsed+30*time.Minute, r.StatusCode)
		}
	}
	e.clock.Advance(31 * time.Minute)
	if r := c.verify("verify", forwarded(), "application/json"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("verify past session_ttl: %d, want 401", r.StatusCode)
	}
}

func TestVerify_LogoutEndsTheSessionForVerify(t *testing.T) {
	e := portalEnv(t)
	c := signedIn(t, e, "alice")
	stolen := c.cookie("totp_auth_session")
	c.postJSON("/.totp-auth/logout", nil)
	thief := e.client()
	u, _ := url.Parse(e.srv.URL)
	thief.jar.SetCookies(u, []*http.Cookie{stolen})
	if r := thief.verify("verify", forwarded(), "application/json"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("verify with a cookie ended by logout: %d, want 401", r.StatusCode)
	}
}

func TestVerify_BlockAndAppPoliciesGive403(t *testing.T) {
	e := portalEnv(t, func(c *gateway.Config) { c.Allow = gateway.Policy{Groups: []string{"staff"}} })
	alice := signedIn(t, e, "alice")
	bob := signedIn(t, e, "bob")
	tests := []struct {
		c      *client
		query  string
		status int
	}{
		{alice, "", 200},
		{bob, "", 200},
		{alice, "?allow_groups=admins", 200},
		{bob, "?allow_groups=admins", 403},
		{bob, "?allow_users=alice,Bob", 200},
		{alice, "?allow_users=bob", 403},
		{alice, "?allow_users=bob&allow_groups=admins", 200},
		{alice, "?allow_groups=nosuch", 400},
		{alice, "?allow_users=", 400},
		{alice, "?allow_users=bob,", 400},
		{alice, "?allow_users=bob&allow_users=alice", 400},
		{bob, "?x=1&allow_groups=admins", 400},
	}
	for _, tt := range tests {
		r := tt.c.verify("verify"+tt.query, forwarded(), "application/json")
		if r.StatusCode != tt.status {
			t.Errorf("verify%s: %d %s, want %d", tt.query, r.StatusCode, r.Body, tt.status)
		}
		if tt.status == 403 && !strings.Contains(r.Body, `"forbidden"`) {
			t.Errorf("verify%s: 403 body %s, want {\"error\":\"forbidden\"}", tt.query, r.Body)
		}
		if tt.status != 200 && r.Header.Get("Remote-User") != "" {
			t.Errorf("verify%s: refused with Remote-User set", tt.query)
		}
	}
	// Outside the block's policy: carol is in no group.
	e2 := portalEnv(t, func(c *gateway.Config) {
		c.Allow = gateway.Policy{Groups: []string{"staff"}}
		c.Users["carol"] = c.Users["alice"]
	})
	carol := signedIn(t, e2, "carol")
	r := carol.verify("verify", forwarded(), "text/html")
	if r.StatusCode != 403 || !strings.Contains(r.Body, "carol") || !strings.Contains(r.Body, "http://"+portalHost+"/.totp-auth/switch?redirect=") {
		t.Fatalf("browser outside the policy: %d, want a 403 page naming carol with a way to the portal\n%s", r.StatusCode, r.Body)
	}
}

// The verify URI's query is parsed strictly (SPEC §12): a misspelt,
// doubled, empty or badly escaped policy, a ';', or a user or group that
// does not exist is refused with 400 and a log line naming it, never
// ignored (which would let every signed-in user pass).
func TestVerify_PolicyQueryIsParsedStrictly(t *testing.T) {
	e := portalEnv(t)
	bob := signedIn(t, e, "bob") // signed in, not in admins
	for _, tt := range []struct{ query, names string }{
		{"?allow_group=admins", "allow_group"},
		{"?Allow_Groups=admins", "Allow_Groups"},
		{"?allow_users=alice;carol", "';'"},
		{"?allow_users=alice&allow_groups=admins;x=1", "';'"},
		{"?allow_groups=adm%zzins", "adm%zzins"},
		{"?allow_gr%zzoups=admins", "allow_gr%zzoups"},
		{"?allow_users=nosuch", "nosuch"},
		{"?allow_groups=nosuch", "nosuch"},
		{"?allow_groups=admins&allow_groups=admins", "twice"},
		{"?allow_groups", "allow_groups is empty"},
		{"?allow_groups=admins&x=1", `"x"`},
		{"?allow_users=alice,,bob", "allow_users"},
	} {
		n := e.logs.Len()
		e.clock.Advance(time.Second) // refused verify calls log at most once a second
		r := bob.verify("verify"+tt.query, forwarded(), "application/json")
		if r.StatusCode != http.StatusBadRequest || r.Header.Get("Remote-User") != "" {
			t.Errorf("verify%s: %d Remote-User %q, want 400 and none", tt.query, r.StatusCode, r.Header.Get("Remote-User"))
			continue
		}
		logged := false
		for _, l := range e.logs.All()[n:] {
			if msg, _ := l.ContextMap()["error"].(string); strings.Contains(msg, tt.names) {
				logged = true
			}
		}
		if !logged {
			t.Errorf("verify%s: no log line naming %s", tt.query, tt.names)
		}
	}
}

// Caddy's forward_auth keeps the app's own query on the verify request
// when its uri has none, and nginx's proxy_pass does too: a query that is
// exactly the original request's is the app's, and its parameters are
// not a policy, unless they are spelt like one.
func TestVerify_TheAppsOwnQueryCarriedOverIsNotAPolicy(t *testing.T) {
	e := portalEnv(t)
	bob := signedIn(t, e, "bob")
	with := func(uri string) map[string]string {
		h := forwarded()
		h["X-Forwarded-Uri"] = uri
		return h
	}
	nginx := func(uri string) map[string]string {
		return map[string]string{"X-Original-Method": "GET", "X-Original-URL": "https://app.example.com" + uri}
	}
	for _, tt := range []struct {
		path, query string
		hdr         map[string]string
		status      int
	}{
		{"verify", "?x=1", with("/wiki/page?x=1"), 200},
		{"verify", "?user=carol&page=2", with("/p?user=carol&page=2"), 200},
		{"verify/nginx", "?x=1&y=2", nginx("/p?x=1&y=2"), 200},
		{"verify", "?allow_groups=admins", with("/p?allow_groups=admins"), 403}, // applied: narrows only
		{"verify", "?allow_group=admins", with("/p?allow_group=admins"), 400},
		{"verify", "?x=1&ALLOW_USERS=alice", with("/p?x=1&ALLOW_USERS=alice"), 400},
		{"verify", "?x=1", with("/p?x=2"), 400},
	} {
		r := bob.verify(tt.path+tt.query, tt.hdr, "application/json")
		if r.StatusCode != tt.status {
			t.Errorf("%s%s for %v: %d %s, want %d", tt.path, tt.query, tt.hdr, r.StatusCode, r.Body, tt.status)
		}
	}
}

// Forwarded headers are believed only from trusted proxies: a client that
// reaches verify directly gets 403 whatever it sends, even with a valid
// session (oauth2-proxy CVE-2026-40575 trusted a spoofed X-Forwarded-Uri).
func TestVerify_CVE_2026_40575_UntrustedCallerGets403(t *testing.T) {
	e := portalEnv(t)
	c := signedIn(t, e, "alice")
	for _, path := range []string{"verify", "verify/nginx"} {
		hdr := forwarded()
		if path == "verify/nginx" {
			hdr = originalHeaders()
		}
		r := c.verify(path, hdr, "text/html", true)
		if r.StatusCode != http.StatusForbidden || r.Header.Get("Remote-User") != "" {
			t.Errorf("%s from an untrusted caller: %d Remote-User %q, want 403 and none", path, r.StatusCode, r.Header.Get("Remote-User"))
		}
	}
	// Without trusted_proxies configured, no caller is trusted.
	e2 := portalEnv(t, func(c *gateway.Config) { c.TrustedProxy = nil })
	c2 := signedIn(t, e2, "alice")
	if r := c2.verify("verify", forwarded(), "application/json"); r.StatusCode != http.StatusForbidden {
		t.Errorf("verify without any trusted proxy: %d, want 403", r.StatusCode)
	}
}

// badVerify lists requests whose headers cannot be believed. Each gets 400
// with and without a valid session: none may answer 2xx.
var badVerify = []struct {
	name, path string
	hdr        map[string]string
}{
	// tinyauth: empty forwarded headers were taken as "no restriction".
	{"tinyauth empty X-Forwarded-Host", "verify", with(forwarded(), "X-Forwarded-Host", "")},
	{"tinyauth empty X-Forwarded-Uri", "verify", with(forwarded(), "X-Forwarded-Uri", "")},
	{"tinyauth empty X-Forwarded-Proto", "verify", with(forwarded(), "X-Forwarded-Proto", "")},
	{"tinyauth empty X-Forwarded-Method", "verify", with(forwarded(), "X-Forwarded-Method", "")},
	{"blank X-Forwarded-Host", "verify", with(forwarded(), "X-Forwarded-Host", " ")},
	{"empty X-Original-URL", "verify/nginx", with(originalHeaders(), "X-Original-URL", "")},
	{"empty X-Original-Method", "verify/nginx", with(originalHeaders(), "X-Original-Method", "")},
	{"missing X-Forwarded-Host", "verify", with(forwarded(), "X-Forwarded-Host", "\x00omit")},
	{"missing X-Forwarded-Uri", "verify", with(forwarded(), "X-Forwarded-Uri", "\x00omit")},
	{"missing X-Forwarded-Proto", "verify", with(forwarded(), "X-Forwarded-Proto", "\x00omit")},
	{"missing X-Forwarded-Method", "verify", with(forwarded(), "X-Forwarded-Method", "\x00omit")},
	{"missing X-Original-URL", "verify/nginx", with(originalHeaders(), "X-Original-URL", "\x00omit")},
	{"missing X-Original-Method", "verify/nginx", with(originalHeaders(), "X-Original-Method", "\x00omit")},
	{"no headers at all", "verify", map[string]string{}},
	// Authelia CVE-2021-32637: a malformed URL was answered 200.
	{"CVE-2021-32637 unparsable X-Original-URL", "verify/nginx", with(originalHeaders(), "X-Original-URL", "https://app.example.com/%zz")},
	{"CVE-2021-32637 X-Original-URL without scheme", "verify/nginx", with(originalHeaders(), "X-Original-URL", "app.example.com/wiki")},
	{"CVE-2021-32637 X-Original-URL relative", "verify/nginx", with(originalHeaders(), "X-Original-URL", "/wiki")},
	{"CVE-2021-32637 X-Original-URL scheme only", "verify/nginx", with(originalHeaders(), "X-Original-URL", "https://")},
	{"CVE-2021-32637 X-Original-URL bad port", "verify/nginx", with(originalHeaders(), "X-Original-URL", "https://app.example.com:99999/")},
	{"CVE-2021-32637 X-Original-URL userinfo", "verify/nginx", with(originalHeaders(), "X-Original-URL", "https://evil.net@app.example.com/")},
	{"CVE-2021-32637 X-Original-URL backslash", "verify/nginx", with(originalHeaders(), "X-Original-URL", "https://app.example.com\\@evil.net/")},
	{"CVE-2021-32637 X-Original-URL ftp", "verify/nginx", with(originalHeaders(), "X-Original-URL", "ftp://app.example.com/")},
	{"CVE-2021-32637 X-Original-URL bad query escape", "verify/nginx", with(originalHeaders(), "X-Original-URL", "https://app.example.com/?a=%zz")},
	{"unparsable X-Forwarded-Uri", "verify", with(forwarded(), "X-Forwarded-Uri", "/%zz")},
	{"X-Forwarded-Uri not a path", "verify", with(forwarded(), "X-Forwarded-Uri", "wiki")},
	{"X-Forwarded-Uri absolute", "verify", with(forwarded(), "X-Forwarded-Uri", "https://evil.net/")},
	{"X-Forwarded-Uri with a backslash", "verify", with(forwarded(), "X-Forwarded-Uri", "/\\evil.net")},
	{"X-Forwarded-Proto neither http nor https", "verify", with(forwarded(), "X-Forwarded-Proto", "gopher")},
	{"X-Forwarded-Proto a list", "verify", with(forwarded(), "X-Forwarded-Proto", "https, http")},
	{"X-Forwarded-Host a list", "verify", with(forwarded(), "X-Forwarded-Host", "app.example.com, evil.net")},
	{"X-Forwarded-Host with userinfo", "verify", with(forwarded(), "X-Forwarded-Host", "evil.net@app.example.com")},
	{"X-Forwarded-Host with a path", "verify", with(forwarded(), "X-Forwarded-Host", "app.example.com/x")},
	{"X-Forwarded-Host with a bad port", "verify", with(forwarded(), "X-Forwarded-Host", "app.example.com:0")},
	// oauth2-proxy CVE-2021-21291: a domain suffix without a dot boundary.
	{"CVE-2021-21291 host suffix without a dot", "verify", with(forwarded(), "X-Forwarded-Host", "evilexample.com")},
	{"CVE-2021-21291 original URL suffix without a dot", "verify/nginx", with(originalHeaders(), "X-Original-URL", "https://evilexample.com/")},
	{"host outside the portal's domains", "verify", with(forwarded(), "X-Forwarded-Host", "evil.net")},
	{"host with a trailing dot", "verify", with(forwarded(), "X-Forwarded-Host", "app.example.com.")},
	{"method with a digit", "verify", with(forwarded(), "X-Forwarded-Method", "G3T")},
	{"method with a space", "verify", with(forwarded(), "X-Forwarded-Method", "GET /")},
	{"method with a dash", "verify/nginx", with(originalHeaders(), "X-Original-Method", "M-SEARCH")},
	{"method too long", "verify", with(forwarded(), "X-Forwarded-Method", strings.Repeat("G", 17))},
	{"contradictory forwarded and original", "verify", with(forwarded(), "X-Original-URL", "https://other.example.com/")},
	{"contradictory original and forwarded", "verify/nginx", with(originalHeaders(), "X-Forwarded-Host", "other.example.com")},
}

// with returns h with name set to v.
func with(h map[string]string, name, v string) map[string]string {
	h[name] = v
	return h
}

func TestVerify_BadHeadersGet400NeverSuccess(t *testing.T) {
	e := portalEnv(t)
	anon := e.client()
	alice := signedIn(t, e, "alice")
	// Good requests first, so that what they leave cached is in place.
	for path, hdr := range map[string]map[string]string{"verify": forwarded(), "verify/nginx": originalHeaders()} {
		if r := alice.verify(path, hdr, "text/html"); r.StatusCode != 200 {
			t.Fatalf("%s: %d", path, r.StatusCode)
		}
	}
	for _, tt := range badVerify {
		for who, c := range map[string]*client{"signed in": alice, "not signed in": anon} {
			r := c.verify(tt.path, tt.hdr, "text/html")
			if r.StatusCode != http.StatusBadRequest || r.Header.Get("Remote-User") != "" {
				t.Errorf("%s (%s): %d Remote-User %q, want 400 and none", tt.name, who, r.StatusCode, r.Header.Get("Remote-User"))
			}
		}
	}
	// Repeated headers are contradictory too.
	req := forwarded()
	r := alice.verifyRepeated("X-Forwarded-Host", "app.example.com", "evil.net")
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("X-Forwarded-Host sent twice: %d, want 400 (%v)", r.StatusCode, req)
	}
}

// verifyRepeated sends the forwarded headers with name sent once per value.
func (c *client) verifyRepeated(name string, values ...string) response {
	hdr := forwarded()
	delete(hdr, name)
	req, _ := http.NewRequest("GET", c.e.srv.URL+"/.totp-auth/verify", nil)
	req.Host = portalHost
	req.Header.Set(trustedMark, "yes")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, v := range values {
		req.Header.Add(name, v)
	}
	if ck := c.cookie("totp_auth_session"); ck != nil {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	resp.Body.Close()
	return response{Response: resp}
}

// authentik CVE-2024-47070: an unparsable X-Forwarded-For skipped a
// stage. Here the client address is never read from the header (it is the
// one the server determined), so such a header changes nothing: no
// session is still no pass, and a session still passes.
func TestVerify_CVE_2024_47070_UnparsableForwardedForChangesNothing(t *testing.T) {
	e := portalEnv(t)
	anon := e.client()
	alice := signedIn(t, e, "alice")
	for _, xff := range []string{"not-an-ip", "", "1.2.3.4, garbage", "[::1", "999.999.999.999"} {
		hdr := with(forwarded(), "X-Forwarded-For", xff)
		if r := anon.verify("verify", hdr, "application/json"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("no session, X-Forwarded-For %q: %d, want 401", xff, r.StatusCode)
		}
		if r := alice.verify("verify", hdr, "application/json"); r.StatusCode != http.StatusOK {
			t.Errorf("session, X-Forwarded-For %q: %d, want 200", xff, r.StatusCode)
		}
	}
}

func TestVerify_HostOfTheVerifyRequestMustBeThePortals(t *testing.T) {
	e := portalEnv(t)
	c := e.client()
	req, _ := http.NewRequest("GET", e.srv.URL+"/.totp-auth/verify", nil)
	req.Header.Set(trustedMark, "yes")
	for k, v := range forwarded() {
		req.Header.Set(k, v)
	}
	req.Host = "auth.evil.net"
	if r := c.do(req); r.StatusCode != http.StatusBadRequest || r.Header.Get("Location") != "" {
		t.Fatalf("verify asked under a foreign Host: %d Location %q, want 400 and none", r.StatusCode, r.Header.Get("Location"))
	}
}

// verifyOverTLS asks e's gateway over TLS, as a trusted proxy, about the
// original request in hdr, under the portal name host.
func verifyOverTLS(t *testing.T, e *env, host string, hdr map[string]string) *http.Response {
	t.Helper()
	srv := httptest.NewTLSServer(e.gw.Middleware(http.NotFoundHandler()))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("GET", srv.URL+"/.totp-auth/verify", nil)
	req.Header.Set(trustedMark, "yes")
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.Host = host
	r, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	return r
}

func TestVerify_LoginLocationDropsTheSchemesOwnPort(t *testing.T) {
	e := portalEnv(t)
	host := portalHost + ":443" // as Caddy's header_up Host {upstream_hostport} sends it
	r := verifyOverTLS(t, e, host, forwarded())
	if want := "https://" + portalHost + "/.totp-auth/login?redirect=" + url.QueryEscape(appURL); r.StatusCode != 401 || r.Header.Get("Location") != want {
		t.Fatalf("verify under Host %s: %d Location %q, want 401 %s", host, r.StatusCode, r.Header.Get("Location"), want)
	}
}

// The login URL is the portal's own origin: an https portal on port 8443
// asked about a plain-http app on 8080 sends the browser to
// https://portal:8443, not http://portal:8443; a plain-http portal asked
// about an https app sends it to http://portal.
func TestVerify_LoginLocationIsThePortalsOwnOrigin(t *testing.T) {
	e := portalEnv(t)
	httpApp := forwarded()
	httpApp["X-Forwarded-Proto"] = "http"
	httpApp["X-Forwarded-Host"] = "app.example.com:8080"
	target := "http://app.example.com:8080/wiki/page?x=1"
	r := verifyOverTLS(t, e, portalHost+":8443", httpApp)
	if want := "https://" + portalHost + ":8443/.totp-auth/login?redirect=" + url.QueryEscape(target); r.StatusCode != 401 || r.Header.Get("Location") != want {
		t.Errorf("https portal, http app: %d Location %q, want 401 %s", r.StatusCode, r.Header.Get("Location"), want)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/.totp-auth/verify", nil)
	req.Header.Set(trustedMark, "yes")
	req.Header.Set("Accept", "application/json")
	for k, v := range forwarded() {
		req.Header.Set(k, v)
	}
	req.Host = portalHost + ":8080"
	got := e.client().do(req)
	if want := "http://" + portalHost + ":8080/.totp-auth/login?redirect=" + url.QueryEscape(appURL); got.StatusCode != 401 || got.Header.Get("Location") != want {
		t.Errorf("http portal, https app: %d Location %q, want 401 %s", got.StatusCode, got.Header.Get("Location"), want)
	}
}

func TestVerify_WithoutPortalIsNotFound(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.TrustedProxy = func(*http.Request) bool { return true } })
	c := signedIn(t, e, "alice")
	if r := c.verify("verify", forwarded(), "application/json"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("verify without portal domains: %d, want 404", r.StatusCode)
	}
}

// Verify passes only sessions proven with a second factor, also where the
// portal's own block lets password-only sessions in; the login page then
// asks for the second factor instead of bouncing the browser back to an
// app that would send it here again.
func TestVerify_PasswordOnlySessionIsAskedForTheSecondFactor(t *testing.T) {
	e := portalEnv(t, func(c *gateway.Config) { c.Optional2FA = true })
	c := e.client()
	r := c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword, "redirect": appURL})
	if r.StatusCode != 200 || r.JSON["status"] != "ok" {
		t.Fatalf("password-only sign-in: %d %s", r.StatusCode, r.Body)
	}
	if r := c.getJSON("/portal-page"); r.StatusCode != 200 {
		t.Fatalf("the portal's own block: %d, want 200 for a password-only session", r.StatusCode)
	}
	if r := c.verify("verify", forwarded(), "application/json"); r.StatusCode != http.StatusUnauthorized || r.Header.Get("Remote-User") != "" {
		t.Fatalf("verify with a password-only session: %d Remote-User %q, want 401", r.StatusCode, r.Header.Get("Remote-User"))
	}
	r = c.getHTML("/.totp-auth/login?redirect=" + url.QueryEscape(appURL))
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/setup" {
		t.Fatalf("login page for an app behind verify: %d Location %q, want 303 to the enrollment", r.StatusCode, r.Header.Get("Location"))
	}
}

// A redirect target is checked again where it is used: a sign-in begun at
// a portal for example.com and finished at one that no longer serves
// that domain (same keys and database, as after a reload) ends at "/".
func TestVerify_RedirectIsCheckedAgainWhenUsed(t *testing.T) {
	hashKey, blockKey := make([]byte, 32), make([]byte, 32)
	for i := range hashKey {
		hashKey[i], blockKey[i] = byte(i), byte(255-i)
	}
	keys := func(c *gateway.Config) { c.SessionHashKey, c.SessionBlockKey = hashKey, blockKey }
	a := portalEnv(t, keys)
	b := portalEnv(t, keys, func(c *gateway.Config) {
		c.Store = a.store
		c.Clock = a.clock
		c.PortalDomains = []string{"other.example.net"}
	})
	ca := a.client()
	secret, _ := ca.enroll("alice")
	ca.postJSON("/.totp-auth/logout", nil)
	a.clock.Advance(30 * time.Second)
	r := ca.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword, "redirect": appURL})
	if r.StatusCode != 200 || r.JSON["redirect"] != appURL {
		t.Fatalf("login at the first portal: %d %s", r.StatusCode, r.Body)
	}
	cb := &client{e: b, jar: ca.jar, http: ca.http} // the same browser (cookies ignore ports)
	r = cb.postJSON("/.totp-auth/2fa", map[string]string{"code": a.code(secret, 0)})
	if r.StatusCode != 200 || r.JSON["redirect"] != "/" {
		t.Fatalf("2fa at a portal without example.com: %d %s, want redirect /", r.StatusCode, r.Body)
	}
}

// Refused verify calls cost a log line at most once a second, so a flood
// of them cannot flood the log.
func TestVerify_RefusalsLogAtMostOncePerSecond(t *testing.T) {
	e := portalEnv(t)
	c := e.client()
	for i := 0; i < 20; i++ {
		c.verify("verify", forwarded(), "application/json", true)
		c.verify("verify", with(forwarded(), "X-Forwarded-Host", "evil.net"), "application/json")
	}
	if n := e.logs.FilterMessageSnippet("totp_auth verify").Len(); n != 1 {
		t.Fatalf("40 refusals within one second logged %d lines, want 1", n)
	}
	e.clock.Advance(time.Second)
	c.verify("verify", forwarded(), "application/json", true)
	if n := e.logs.FilterMessageSnippet("totp_auth verify").Len(); n != 2 {
		t.Fatalf("a refusal a second later: %d lines in all, want 2", n)
	}
}

// A session cookie that does not reach the app would make the login page
// and the app send the browser to each other forever: the login page says
// so instead.
func TestVerify_LoginPageBreaksTheLoopWhenTheCookieCannotReachTheApp(t *testing.T) {
	e := portalEnv(t)
	c := signedIn(t, e, "alice")
	r := c.getHTML("/.totp-auth/login?redirect=" + url.QueryEscape(appURL))
	if r.StatusCode != http.StatusBadRequest || r.Header.Get("Location") != "" || !strings.Contains(r.Body, "cookie_domain") {
		t.Fatalf("without cookie_domain: %d Location %q, want a 400 page naming cookie_domain\n%s", r.StatusCode, r.Header.Get("Location"), r.Body)
	}
	// With a cookie_domain above the app, the browser goes back to it.
	e2 := portalEnv(t, func(c *gateway.Config) { c.CookieDomain = "example.com" })
	c2 := e2.client()
	c2.jar = hostOnlyJar{c2.jar}
	c2.http.Jar = c2.jar
	c2.enroll("alice")
	r = c2.getHTML("/.totp-auth/login?redirect=" + url.QueryEscape(appURL))
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != appURL {
		t.Fatalf("with cookie_domain example.com: %d Location %q, want 303 %s", r.StatusCode, r.Header.Get("Location"), appURL)
	}
}

// hostOnlyJar keeps cookies set for a parent domain as cookies of the
// test server's own address, which a cookie jar would otherwise refuse.
type hostOnlyJar struct{ http.CookieJar }

func (j hostOnlyJar) SetCookies(u *url.URL, cs []*http.Cookie) {
	for _, c := range cs {
		c.Domain = ""
	}
	j.CookieJar.SetCookies(u, cs)
}

// A forward-auth check sent to a path of the portal other than verify (a
// proxy's uri outside prefix, or pointing at the login page) must not
// pass: the portal's own pages and its upstream answer 200, which the
// proxy would read as "allowed", for any user and with no app policy.
func TestVerify_ACheckSentToAnotherPathIsRefused(t *testing.T) {
	e := portalEnv(t)
	bob := signedIn(t, e, "bob") // signed in, not in admins
	anon := e.client()
	for _, c := range []*client{bob, anon} {
		for _, tt := range []struct {
			path string
			hdr  map[string]string
		}{
			{"verify", forwarded()}, // .../.totp-auth/verify is the right one; /verify is not
			{"login", forwarded()},
			{"whoami", forwarded()},
			{"login", originalHeaders()},
		} {
			for _, p := range []string{"/" + tt.path + "?allow_groups=admins", "/.totp-auth/" + tt.path + "x?allow_groups=admins"} {
				req, _ := http.NewRequest("GET", e.srv.URL+p, nil)
				req.Host = portalHost
				req.Header.Set(trustedMark, "yes")
				req.Header.Set("Accept", "text/html")
				for k, v := range tt.hdr {
					req.Header.Set(k, v)
				}
				r := c.do(req)
				if r.StatusCode != http.StatusBadRequest || r.Header.Get("Remote-User") != "" {
					t.Errorf("check sent to %s: %d Remote-User %q, want 400 and none", p, r.StatusCode, r.Header.Get("Remote-User"))
				}
			}
		}
	}
	select {
	case h := <-e.upstream:
		t.Fatalf("a misdirected check reached the upstream: %v", h)
	default:
	}
	// A plain request of a signed-in user still passes.
	if r := bob.getJSON("/wiki"); r.StatusCode != 200 {
		t.Fatalf("bob's own request: %d, want 200", r.StatusCode)
	}
}
