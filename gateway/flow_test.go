package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestGate_BrowserIsRedirectedToLoginWithTarget(t *testing.T) {
	e := newEnv(t)
	r := e.client().getHTML("/app/page?x=1&y=2")
	if r.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want 302", r.StatusCode)
	}
	want := "/.totp-auth/login?redirect=" + url.QueryEscape("/app/page?x=1&y=2")
	if got := r.Header.Get("Location"); got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	select {
	case <-e.upstream:
		t.Fatal("request reached the upstream without a session")
	default:
	}
}

func TestGate_APIClientGets401JSON(t *testing.T) {
	e := newEnv(t)
	r := e.client().getJSON("/api/things")
	if r.StatusCode != http.StatusUnauthorized || r.JSON["error"] != "unauthenticated" {
		t.Fatalf("got %d %s, want 401 unauthenticated", r.StatusCode, r.Body)
	}
}

func TestGate_FailsClosedOnStoreError(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	e.failing.Store(true)
	r := c.getJSON("/app")
	if r.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d with a failing store, want 500", r.StatusCode)
	}
	select {
	case <-e.upstream:
		t.Fatal("request reached the upstream while the store failed")
	default:
	}
}

func TestFlow_FirstLoginEnrollsThenReachesUpstreamWithUser(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	r := c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword, "redirect": "/app?q=1"})
	if r.StatusCode != 200 || r.JSON["status"] != "enroll_required" || r.JSON["redirect"] != "/app?q=1" {
		t.Fatalf("login: %d %s", r.StatusCode, r.Body)
	}
	r = c.getJSON("/.totp-auth/setup")
	secret, _ := r.JSON["secret"].(string)
	uri, _ := r.JSON["otpauth_uri"].(string)
	qr, _ := r.JSON["qr_png"].(string)
	if len(secret) != 32 || !strings.HasPrefix(qr, "data:image/png;base64,") {
		t.Fatalf("setup: %s", r.Body)
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Test Lab:alice" ||
		u.Query().Get("issuer") != "Test Lab" || u.Query().Get("secret") != secret {
		t.Fatalf("otpauth uri %q", uri)
	}
	r = c.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(secret, 0)})
	if r.StatusCode != 200 || r.JSON["status"] != "ok" || len(r.JSON["backup_codes"].([]any)) != 10 {
		t.Fatalf("confirm: %d %s", r.StatusCode, r.Body)
	}
	r = c.getJSON("/app?q=1")
	if r.StatusCode != 200 || r.Body != "upstream /app?q=1 user=alice" {
		t.Fatalf("upstream: %d %q", r.StatusCode, r.Body)
	}
	r = c.getJSON("/.totp-auth/whoami")
	if r.JSON["user"] != "alice" || r.JSON["two_factor"] != true || r.JSON["expires"] == nil {
		t.Fatalf("whoami: %s", r.Body)
	}
}

func TestFlow_ReturningUserNeedsPasswordThenCode(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	if r := c.getJSON("/app"); r.StatusCode != 401 {
		t.Fatalf("after logout: %d", r.StatusCode)
	}
	e.clock.Advance(30 * time.Second)
	r := c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword, "redirect": "/x"})
	if r.JSON["status"] != "2fa_required" || r.JSON["redirect"] != "/x" {
		t.Fatalf("login: %s", r.Body)
	}
	r = c.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0)})
	if r.StatusCode != 200 || r.JSON["status"] != "ok" || r.JSON["redirect"] != "/x" {
		t.Fatalf("2fa: %d %s", r.StatusCode, r.Body)
	}
	if r := c.getJSON("/x"); r.StatusCode != 200 {
		t.Fatalf("upstream: %d", r.StatusCode)
	}
}

func TestFlow_BrowserFormsWorkWithoutJavaScript(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	r := c.getHTML("/dash?tab=2")
	loginPath := r.Header.Get("Location")
	r = c.postForm(loginPath, "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}, "redirect": {"/dash?tab=2"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/setup" {
		t.Fatalf("login form: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	page := c.getHTML("/.totp-auth/setup")
	if !strings.Contains(page.Body, `<img class="qr" src="data:image/png;base64,`) {
		t.Fatalf("setup page has no inline QR:\n%s", page.Body)
	}
	i := strings.Index(page.Body, `id="secret">`)
	secret := page.Body[i+len(`id="secret">`):]
	secret = strings.ReplaceAll(secret[:strings.IndexByte(secret, '<')], " ", "") // shown in groups of four
	r = c.postForm("/.totp-auth/setup", "/.totp-auth/setup", url.Values{"code": {e.code(secret, 0)}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/codes" {
		t.Fatalf("setup form: %d %s, want 303 to the codes page", r.StatusCode, r.Header.Get("Location"))
	}
	if r = c.getHTML("/.totp-auth/codes"); r.StatusCode != 200 || strings.Count(r.Body, "<li>") != 10 || !strings.Contains(r.Body, `href="/dash?tab=2"`) {
		t.Fatalf("codes page: %d\n%s", r.StatusCode, r.Body)
	}
	if r := c.getHTML("/dash?tab=2"); r.StatusCode != 200 || r.Body != "upstream /dash?tab=2 user=alice" {
		t.Fatalf("upstream: %d %q", r.StatusCode, r.Body)
	}
	// Sign out and back in with the 2fa form.
	r = c.postForm("/.totp-auth/account", "/.totp-auth/logout", url.Values{})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	e.clock.Advance(30 * time.Second)
	r = c.postForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}, "redirect": {"/dash"}})
	if r.Header.Get("Location") != "/.totp-auth/2fa" {
		t.Fatalf("login: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	r = c.postForm("/.totp-auth/2fa", "/.totp-auth/2fa", url.Values{"code": {e.code(secret, 0)}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/dash" {
		t.Fatalf("2fa form: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
}

func TestPendingCookie_IsNeverASession(t *testing.T) {
	e := newEnv(t)
	owner := e.client()
	owner.enroll("alice")
	c := e.client()
	e.clock.Advance(30 * time.Second)
	r := c.login("alice", testPassword)
	if r.JSON["status"] != "2fa_required" {
		t.Fatalf("login: %s", r.Body)
	}
	pending := c.cookie("totp_auth_session_pending")
	if pending == nil {
		t.Fatal("no pending cookie")
	}
	for _, path := range []string{"/app", "/.totp-auth/whoami", "/.totp-auth/account", "/.totp-auth/backup-codes", "/.totp-auth/setup"} {
		if r := c.getJSON(path); r.StatusCode != 401 {
			t.Errorf("GET %s with a pending cookie: %d %s", path, r.StatusCode, r.Body)
		}
	}
	for _, path := range []string{"/.totp-auth/logout-all", "/.totp-auth/disable", "/.totp-auth/backup-codes"} {
		if r := c.postJSON(path, map[string]string{"code": "123456", "password": testPassword}); r.StatusCode != 401 {
			t.Errorf("POST %s with a pending cookie: %d %s", path, r.StatusCode, r.Body)
		}
	}
	// The same value under the session cookie's name is no session either.
	req, _ := http.NewRequest("GET", e.srv.URL+"/app", nil)
	req.Header.Set("Accept", "application/json")
	req.AddCookie(&http.Cookie{Name: "totp_auth_session", Value: pending.Value})
	if r := e.client().do(req); r.StatusCode != 401 {
		t.Errorf("pending value as session cookie: %d", r.StatusCode)
	}
}

func TestIdentityHeader_ClientSpellingsAreStripped(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	req, _ := http.NewRequest("GET", e.srv.URL+"/app", nil)
	req.Header["Remote-User"] = []string{"root"}
	req.Header["remote-user"] = []string{"root"}
	req.Header["Remote_User"] = []string{"root"}
	req.Header["REMOTE_USER"] = []string{"root"}
	req.Header["Remote-User-Extra"] = []string{"kept"}
	c.do(req)
	h := <-e.upstream
	var got []string
	for name, v := range h {
		if strings.EqualFold(strings.ReplaceAll(name, "_", "-"), "remote-user") {
			got = append(got, name+"="+strings.Join(v, ","))
		}
	}
	if len(got) != 1 || got[0] != "Remote-User=alice" {
		t.Fatalf("upstream identity headers: %v", got)
	}
	if h.Get("Remote-User-Extra") != "kept" {
		t.Errorf("unrelated header removed")
	}
}

func TestAuthPages_SendSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	for _, path := range []string{"/.totp-auth/login", "/.totp-auth/whoami", "/.totp-auth/nope"} {
		r := c.getHTML(path)
		for name, want := range map[string]string{
			"Cache-Control":   "no-store",
			"X-Frame-Options": "DENY",
			"Referrer-Policy": "no-referrer",
		} {
			if got := r.Header.Get(name); got != want {
				t.Errorf("%s: %s = %q, want %q", path, name, got, want)
			}
		}
		csp := r.Header.Get("Content-Security-Policy")
		for _, part := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "img-src data:"} {
			if !strings.Contains(csp, part) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, part)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows unsafe-inline", path)
		}
	}
}

func TestUserNames_AreCanonical(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	r := c.login("  ALICE ", testPassword)
	if r.JSON["status"] != "enroll_required" {
		t.Fatalf("login as ALICE: %s", r.Body)
	}
	secret := c.getJSON("/.totp-auth/setup").JSON["secret"].(string)
	c.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(secret, 0)})
	if r := c.getJSON("/app"); r.Body != "upstream /app user=alice" {
		t.Fatalf("upstream saw %q", r.Body)
	}
}

func TestRequests_BadInputGets4xxAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	post := func(ct, body string) response {
		req, _ := http.NewRequest("POST", e.srv.URL+"/.totp-auth/login", strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		req.Header.Set("Accept", "application/json")
		return c.do(req)
	}
	tests := []struct {
		name, ct, body string
		status         int
	}{
		{"text/plain", "text/plain", "username=alice", 415},
		{"no content type", "", "username=alice", 415},
		{"multipart", "multipart/form-data; boundary=x", "--x--", 415},
		{"malformed JSON", "application/json", "{", 400},
		{"JSON number field", "application/json", `{"username":1,"password":"x"}`, 400},
		{"JSON array", "application/json", `[]`, 400},
		{"oversized body", "application/json", `{"username":"` + strings.Repeat("a", 20000) + `"}`, 413},
		{"empty credentials", "application/json", `{}`, 400},
		{"form without CSRF token", "application/x-www-form-urlencoded", "username=alice&password=x", 403},
	}
	for _, tt := range tests {
		if r := post(tt.ct, tt.body); r.StatusCode != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, r.StatusCode, r.Body, tt.status)
		}
	}
	acct, _ := e.store.Account("alice")
	if acct.Stored {
		t.Errorf("bad input changed stored state: %+v", acct)
	}
	if r := c.getJSON("/.totp-auth/login"); r.StatusCode != 200 {
		t.Errorf("login page after bad input: %d", r.StatusCode)
	}
}

func TestFlow_DatabaseUserSignsInAndKeepsTheSession(t *testing.T) {
	e := newEnv(t)
	e.store.SetPassword("dora", passwordHash(t))
	c := e.client()
	secret, _ := c.enroll("dora")
	if r := c.getJSON("/app"); r.StatusCode != 200 || r.Body != "upstream /app user=dora" {
		t.Fatalf("database user after enrollment: %d %q", r.StatusCode, r.Body)
	}
	c.signIn("dora", secret)
	if r := c.getJSON("/.totp-auth/whoami"); r.JSON["user"] != "dora" {
		t.Fatalf("whoami: %s", r.Body)
	}
	// A session of a name that is neither configured nor in the store is void.
	stranger := e.client()
	if r := stranger.login("nobody", testPassword); r.StatusCode != 401 {
		t.Fatalf("unknown user signed in: %d", r.StatusCode)
	}
}

func TestUpstream_DoesNotSeeTheGatewaysCookies(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	session := c.cookie("totp_auth_session").Value
	tests := []struct {
		name   string
		cookie []string
		want   []string // Cookie lines the upstream gets
	}{
		{"only ours", []string{"totp_auth_session=" + session}, nil},
		{"ours among others", []string{"theme=dark; totp_auth_session=" + session + "; lang=en"}, []string{"theme=dark; lang=en"}},
		{"several lines", []string{"a=1", "totp_auth_session=" + session + ";totp_auth_session_pending=x", "b=2"}, []string{"a=1", "b=2"}},
		{"a look-alike name stays", []string{"totp_auth_session=" + session + "; totp_auth_session_theme=1"}, []string{"totp_auth_session_theme=1"}},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("GET", e.srv.URL+"/app", nil)
		req.Header.Set("Accept", "application/json")
		req.Header["Cookie"] = tt.cookie
		if r := e.client().do(req); r.StatusCode != 200 {
			t.Fatalf("%s: %d", tt.name, r.StatusCode)
		}
		got := (<-e.upstream)["Cookie"]
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%s: upstream got Cookie %q, want %q", tt.name, got, tt.want)
		}
	}
}
