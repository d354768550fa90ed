package gateway_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// The pages a person uses (SPEC §10): post/redirect/get, codes shown once,
// resent forms, pages that say what happened, messages in words.

// sendForm posts vals to path as a browser whose page is the one at
// pagePath: with that page's CSRF and one-time form tokens. It returns the
// answer and the body it sent, which resend posts again.
func (c *client) sendForm(pagePath, path string, vals url.Values) (response, url.Values) {
	c.e.t.Helper()
	page := c.getHTML(pagePath)
	vals.Set("csrf", formValue(c.e.t, page.Body, "csrf"))
	vals.Set("form_token", formValue(c.e.t, page.Body, "form_token"))
	return c.resend(path, vals), vals
}

// resend posts vals to path again, as a browser does on reload.
func (c *client) resend(path string, vals url.Values) response {
	req, _ := http.NewRequest("POST", c.e.srv.URL+path, strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Origin", c.e.srv.URL)
	return c.do(req)
}

func TestPages_ResentFormCountsNoFailureAndShowsNoError(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailures = 2 })
	c := e.client()
	r, sent := c.sendForm("/.totp-auth/login?redirect=/app", "/.totp-auth/login",
		url.Values{"username": {"alice"}, "password": {"wrong"}, "redirect": {"/app"}})
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Body, "Wrong user name or password") {
		t.Fatalf("wrong password: %d\n%s", r.StatusCode, r.Body)
	}
	// Reloading the answer sends the same form again: recognised, and sent
	// to a fresh login page without an error, as often as the user reloads.
	for range 3 {
		r = c.resend("/.totp-auth/login", sent)
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/login?redirect=%2Fapp" {
			t.Fatalf("resent form: %d %s, want 303 to the login page", r.StatusCode, r.Header.Get("Location"))
		}
	}
	// Another process (no memory of the token) knows it by the cookie; a
	// browser without the cookie by this process's memory.
	other := e.client()
	if r := other.resend("/.totp-auth/login", sent); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("the same token from a client without the cookie: %d, want 303", r.StatusCode)
	}
	// One failure was counted, not four: with max_failures 2 the right
	// password still signs in.
	r, _ = c.sendForm("/.totp-auth/login", "/.totp-auth/login",
		url.Values{"username": {"alice"}, "password": {testPassword}, "redirect": {"/app"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/setup" {
		t.Fatalf("right password after resent forms: %d %s\n%s", r.StatusCode, r.Header.Get("Location"), r.Body)
	}
}

func TestPages_SuccessfulPostsRedirect(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.client(), e.client()
	secret, _ := alice.enroll("alice")
	bob.enroll("bob")
	e.clock.Advance(30 * time.Second)
	tests := []struct {
		name string
		c    *client
		path string
		vals url.Values
		to   string
	}{
		{"new backup codes", alice, "/.totp-auth/backup-codes", url.Values{"code": {e.code(secret, 0)}}, "/.totp-auth/codes"},
		{"turn 2FA off", alice, "/.totp-auth/disable", url.Values{"password": {testPassword}, "code": {e.code(secret, 1)}}, "/.totp-auth/done?what=two-factor-off"},
		{"sign out everywhere", bob, "/.totp-auth/logout-all", url.Values{}, "/.totp-auth/done?what=signed-out-everywhere"},
	}
	for _, tt := range tests {
		if tt.path == "/.totp-auth/disable" {
			e.clock.Advance(30 * time.Second) // the tests' drift is 0: the code of the next step
		}
		r, _ := tt.c.sendForm("/.totp-auth/account", tt.path, tt.vals)
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != tt.to {
			t.Fatalf("%s: %d %s, want 303 to %s\n%s", tt.name, r.StatusCode, r.Header.Get("Location"), tt.to, r.Body)
		}
	}
	for c, want := range map[*client]string{alice: "Two-factor authentication is off", bob: "You are signed out everywhere"} {
		if r := c.getHTML(tests[map[*client]int{alice: 1, bob: 2}[c]].to); !strings.Contains(r.Body, want) {
			t.Errorf("the page after the post does not say %q:\n%s", want, r.Body)
		}
	}
}

func TestPages_BackupCodesShownOnceToTheSessionThatMadeThem(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	r, _ := c.sendForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	setup := c.getHTML("/.totp-auth/setup").Body
	i := strings.Index(setup, `data-copy="`) + len(`data-copy="`)
	secret := setup[i : i+strings.IndexByte(setup[i:], '"')]
	r, _ = c.sendForm("/.totp-auth/setup", "/.totp-auth/setup", url.Values{"code": {e.code(secret, 0)}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/codes" {
		t.Fatalf("setup: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	first := c.getHTML("/.totp-auth/codes")
	if n := strings.Count(first.Body, "<li>"); n != 10 || !strings.Contains(first.Body, "Two-factor authentication is on") {
		t.Fatalf("codes page shows %d codes:\n%s", n, first.Body)
	}
	e.clock.Advance(50 * time.Second)
	if again := c.getHTML("/.totp-auth/codes"); again.Body != first.Body && strings.Count(again.Body, "<li>") != 10 {
		t.Fatalf("a reload within the minute shows no codes:\n%s", again.Body)
	}
	// Another session of the same user, even with a copy of this
	// browser's codes cookie, sees none.
	other := e.client()
	other.signIn("alice", secret)
	u, _ := url.Parse(e.srv.URL + "/.totp-auth/")
	var codesCookie *http.Cookie
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == "totp_auth_session_codes" {
			codesCookie = ck
		}
	}
	if codesCookie == nil {
		t.Fatal("no codes cookie")
	}
	other.jar.SetCookies(u, []*http.Cookie{codesCookie})
	if r := other.getHTML("/.totp-auth/codes"); strings.Contains(r.Body, "<li>") || !strings.Contains(r.Body, "shown once") {
		t.Fatalf("another session sees the codes:\n%s", r.Body)
	}
	// After the minute, no one does.
	e.clock.Advance(11 * time.Second)
	if r := c.getHTML("/.totp-auth/codes"); strings.Contains(r.Body, "<li>") {
		t.Fatalf("the codes are still shown after a minute:\n%s", r.Body)
	}
	if r := c.getHTML("/.totp-auth/codes.txt"); r.StatusCode != http.StatusGone {
		t.Fatalf("the text file is still offered after a minute: %d", r.StatusCode)
	}
}

func TestPages_BackupCodesDownloadAsTextNamingUserSiteAndDate(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	secret, _ := c.enroll("alice")
	e.clock.Advance(30 * time.Second)
	c.sendForm("/.totp-auth/account", "/.totp-auth/backup-codes", url.Values{"code": {e.code(secret, 0)}})
	page := c.getHTML("/.totp-auth/codes")
	r := c.getHTML("/.totp-auth/codes.txt")
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("codes.txt: %d %q", r.StatusCode, r.Header.Get("Content-Disposition"))
	}
	host := strings.TrimPrefix(e.srv.URL, "http://")
	for _, want := range []string{"alice", "Test Lab (" + host + ")", "24 November 2026"} {
		if !strings.Contains(r.Body, want) || !strings.Contains(page.Body, want) {
			t.Errorf("the text file or the printable page does not name %q:\n%s\n%s", want, r.Body, page.Body)
		}
	}
	for _, li := range strings.Split(page.Body, "<li>")[1:] {
		if code := li[:strings.IndexByte(li, '<')]; !strings.Contains(r.Body, code) {
			t.Errorf("the text file lacks code %s", code)
		}
	}
}

func TestPages_SignOutEndsOnAPageThatSaysSo(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	r, _ := c.sendForm("/.totp-auth/account", "/.totp-auth/logout", url.Values{})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/done?what=signed-out" {
		t.Fatalf("logout: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if r := c.getHTML(r.Header.Get("Location")); !strings.Contains(r.Body, "You are signed out") {
		t.Fatalf("after logout the page says:\n%s", r.Body)
	}
	if r := c.getHTML("/.totp-auth/done?what=nothing"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("done page for nothing: %d", r.StatusCode)
	}
}

func TestPages_MessagesInWords(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailures = 4 })
	c := e.client()
	secret, _ := c.enroll("alice")
	c.postJSON("/.totp-auth/logout", nil)
	c.sendForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	wrong := func() string {
		r, _ := c.sendForm("/.totp-auth/2fa", "/.totp-auth/2fa", url.Values{"code": {"000000"}})
		return r.Body
	}
	// Two lines: what is wrong (and how many attempts are left when few),
	// then the server's time.
	if b := wrong(); !strings.Contains(b, ">That code is not right.\nTime on this server: 12:00:07 UTC.</p>") || strings.Contains(b, "attempts left") {
		t.Fatalf("first wrong code (3 left): want the server's time and no count:\n%s", b)
	}
	if b := wrong(); !strings.Contains(b, ">That code is not right. 2 attempts left.\nTime on this server: ") {
		t.Fatalf("second wrong code:\n%s", b)
	}
	if b := wrong(); !strings.Contains(b, "1 attempt left") {
		t.Fatalf("third wrong code:\n%s", b)
	}
	if b := wrong(); !strings.Contains(b, "Try again in 15 minutes") || !strings.Contains(b, "an administrator can unlock you") {
		t.Fatalf("the wrong code that locks:\n%s", b)
	}
	e.clock.Advance(4*time.Minute + 3*time.Second)
	r, _ := c.sendForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	if !strings.Contains(r.Body, "Try again in 11 minutes.") || strings.Contains(r.Body, "m57s") {
		t.Fatalf("while locked:\n%s", r.Body)
	}
	_ = secret
}

func TestPages_SetupShowsTheKeyInGroupsWithACopyButtonAndExpiryInWords(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.sendForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	r := c.getJSON("/.totp-auth/setup")
	secret := r.JSON["secret"].(string)
	page := c.getHTML("/.totp-auth/setup").Body
	var groups []string
	for i := 0; i < len(secret); i += 4 {
		groups = append(groups, secret[i:min(i+4, len(secret))])
	}
	uri := strings.ReplaceAll(r.JSON["otpauth_uri"].(string), "&", "&amp;")
	for _, want := range []string{
		// Four groups to a row, each row kept on one line.
		`id="secret"><span class="keyrow">` + strings.Join(groups[:4], " ") + `</span> <span class="keyrow">` + strings.Join(groups[4:], " ") + `</span></code>`,
		// A phone cannot scan its own screen: the link hands the URI to the app.
		`<a class="button secondary open-app" href="` + uri + `">Open in authenticator app</a>`,
		`data-copy="` + secret + `" hidden>Copy key</button>`, // shown by the script only
		"This key is valid for 10 minutes.",
		`action="/.totp-auth/logout"`, `Cancel and sign out`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("setup page lacks %q:\n%s", want, page)
		}
	}
	// The one script of the pages is allowed by its hash, and nothing else.
	csp := c.getHTML("/.totp-auth/setup").Header.Get("Content-Security-Policy")
	i := strings.Index(page, "<script>") + len("<script>")
	script := page[i : i+strings.Index(page[i:], "</script>")]
	sum := sha256.Sum256([]byte(script))
	if want := "script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "';"; !strings.Contains(csp, want) {
		t.Errorf("CSP %q does not allow the page's script by its hash (%s)", csp, want)
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline scripts: %s", csp)
	}
	e.clock.Advance(4*time.Minute + 20*time.Second) // the pending sign-in lasts 5 minutes
	if page := c.getHTML("/.totp-auth/setup").Body; !strings.Contains(page, "valid for 6 minutes") {
		t.Errorf("expiry near the end is not in words:\n%s", page)
	}
}

func TestPages_AccountLeadsBackWhereTheUserCameFrom(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	tests := []struct{ name, query, referer, want string }{
		{"no hint", "", "", `href="/"`},
		{"redirect parameter", "?redirect=%2Fgrafana%2Fd%2F1", "", `href="/grafana/d/1"`},
		{"page of this site", "", e.srv.URL + "/wiki/page?x=1", `href="/wiki/page?x=1"`},
		{"page of another site", "", "https://evil.example/x", `href="/"`},
		{"a built-in page", "", e.srv.URL + "/.totp-auth/codes", `href="/"`},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("GET", e.srv.URL+"/.totp-auth/account"+tt.query, nil)
		req.Header.Set("Accept", "text/html")
		if tt.referer != "" {
			req.Header.Set("Referer", tt.referer)
		}
		r := c.do(req)
		i := strings.Index(r.Body, `<a class="back"`)
		if i < 0 || !strings.HasPrefix(r.Body[i+len(`<a class="back" `):], tt.want) {
			t.Errorf("%s: back link is not %s:\n%.300s", tt.name, tt.want, r.Body[max(0, i):])
		}
	}
}

func TestPages_MovingToANewAppSaysWhatHappensToTheBackupCodes(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	// The password comes first (SPEC §4 rule 21); then the new key.
	if r, _ := c.sendForm("/.totp-auth/setup", "/.totp-auth/setup", url.Values{"password": {testPassword}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("password step: %d", r.StatusCode)
	}
	page := c.getHTML("/.totp-auth/setup").Body
	for _, want := range []string{
		"<title>Move to a new authenticator app",
		"you get a new set of 10 backup codes: the 10 backup codes you have now stop working",
		"Cancel, keep my current app",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("move page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "Set up two-factor") {
		t.Errorf("the move page calls itself set-up:\n%s", page)
	}
}

func TestPages_TurningOnFromTheAccountPageIsNoMove(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.Optional2FA = true })
	c := e.client()
	r, _ := c.sendForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", r.StatusCode)
	}
	page := c.getHTML("/.totp-auth/setup").Body
	if !strings.Contains(page, "<h1>Set up two-factor authentication</h1>") {
		t.Fatalf("turning 2FA on is titled otherwise:\n%s", page)
	}
	secret := c.postJSON("/.totp-auth/setup", map[string]string{"password": testPassword}).JSON["secret"].(string)
	c.sendForm("/.totp-auth/setup", "/.totp-auth/setup", url.Values{"code": {e.code(secret, 0)}})
	if r := c.getHTML("/.totp-auth/codes"); !strings.Contains(r.Body, "<h1>Two-factor authentication is on</h1>") {
		t.Fatalf("after turning 2FA on the codes page says:\n%s", r.Body)
	}
}

// shownKey returns the text of the key the setup page shows.
func shownKey(t *testing.T, body string) string {
	t.Helper()
	i := strings.Index(body, `id="secret">`)
	if i < 0 {
		t.Fatalf("no key on the page:\n%s", body)
	}
	rest := body[i+len(`id="secret">`):]
	rest = rest[:strings.Index(rest, "</code>")]
	var b strings.Builder
	for inTag, j := false, 0; j < len(rest); j++ {
		switch c := rest[j]; {
		case c == '<':
			inTag = true
		case c == '>':
			inTag = false
		case !inTag:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Turning two-factor authentication off where the site requires it says
// before the user confirms that it only forces a new enrollment; a wrong
// code keeps the section open with the refusal in it.
func TestPages_TurningOffSaysItOnlyForcesANewEnrollmentAndStaysOpenAfterAWrongCode(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	secret, _ := c.enroll("alice")
	page := c.getHTML("/.totp-auth/account").Body
	if !strings.Contains(page, `<p class="caution" role="note" id="disable-note">This site requires two-factor authentication`) ||
		!strings.Contains(page, "your next sign-in sets up an authenticator app again") {
		t.Fatalf("the account page does not say before turning off that it only forces a new enrollment:\n%s", page)
	}
	if strings.Contains(page, `<details class="more danger" open>`) {
		t.Fatal("the section to turn 2FA off is open before anything was tried")
	}
	r, _ := c.sendForm("/.totp-auth/account", "/.totp-auth/disable", url.Values{"password": {testPassword}, "code": {"000000"}})
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Body, `<details class="more danger" open>`) ||
		!strings.Contains(r.Body, `</summary>
<p class="error" role="alert">Wrong password or code.
Time on this server: 12:00:07 UTC.</p>`) {
		t.Fatalf("a wrong code: %d, want the section open with the refusal in it\n%s", r.StatusCode, r.Body)
	}

	// The same user where 2FA is optional.
	opt := newEnv(t, func(c *gateway.Config) { c.Optional2FA, c.Store, c.Clock = true, e.store, e.clock })
	oc := opt.client()
	e.clock.Advance(30 * time.Second)
	oc.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword})
	if r := oc.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("sign-in where 2FA is optional: %d %s", r.StatusCode, r.Body)
	}
	if page := oc.getHTML("/.totp-auth/account").Body; strings.Contains(page, "This site requires") || !strings.Contains(page, "you sign in with your password alone") {
		t.Fatalf("where 2FA is optional the account page says:\n%s", page)
	}
}
