package e2e_test

import (
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// browserSite starts Caddy with one protected site for users and returns
// its port.
func browserSite(t *testing.T, users ...string) int {
	t.Helper()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", protectedSite(port, c.totpAuth("totp.db", users, `issuer "Browser Lab"`), up)), port)
	return port
}

// logScreenshots tells where the screenshots of t are.
func logScreenshots(t *testing.T) {
	dir, ok := screenshotDirs.Load(t.Name())
	switch {
	case !ok:
	case os.Getenv(keepScreenshotsEnv) != "":
		t.Logf("screenshots: %s", dir)
	default:
		t.Logf("screenshots: %s (removed with the test; set %s=<dir> to keep them)", dir, keepScreenshotsEnv)
	}
}

// signIn fills in the login page the browser shows and submits it.
func (b *tab) signIn(user, password string) {
	b.t.Helper()
	b.at(prefix + "/login")
	b.fill("#username", user)
	b.fill("#password", password)
	b.click("button[type=submit]")
}

// enrollInBrowser walks the setup page the browser shows: the QR code must
// read back as the otpauth URI of the key printed beside it, and a code
// from oathtool confirms it. It returns the authenticator and the backup
// codes the next page shows.
func (b *tab) enrollInBrowser(user string) (*authenticator, []string) {
	b.t.Helper()
	b.at(prefix + "/setup")
	b.expectHeading("Set up two-factor authentication")
	// The key is shown in groups of four, as people read it out.
	shown := b.text("#secret")
	if !regexp.MustCompile(`^[A-Z2-7]{4}( [A-Z2-7]{1,4})+$`).MatchString(shown) {
		b.t.Errorf("the setup page shows the key as %q, want groups of four", shown)
	}
	secret := strings.ReplaceAll(shown, " ", "")
	if secret == "" {
		b.t.Fatal("the setup page shows no key for manual entry")
	}
	qr := decodeQR(b.t, b.attr("img.qr", "src"))
	want := url.URL{Scheme: "otpauth", Host: "totp", Path: "/Browser Lab:" + user,
		RawQuery: url.Values{"issuer": {"Browser Lab"}, "secret": {secret}}.Encode()}
	got, err := url.Parse(qr)
	if err != nil {
		b.t.Fatalf("QR code reads %q: %v", qr, err)
	}
	if got.Scheme != want.Scheme || got.Host != want.Host || got.Path != want.Path ||
		got.Query().Get("issuer") != "Browser Lab" || got.Query().Get("secret") != secret {
		b.t.Fatalf("QR code reads %q, want the URI of the key on the page, %q", qr, want.String())
	}
	// The same cookies get the JSON form of the page: the QR code in the
	// browser is exactly its otpauth_uri.
	r := b.clientWithCookies().api("GET", "setup", nil)
	expect(b.t, "GET setup with the browser's cookies", r, http.StatusOK)
	if uri := r.json(b.t)["otpauth_uri"]; uri != qr {
		b.t.Fatalf("QR code reads %q, want otpauth_uri %q", qr, uri)
	}
	b.checkForm()
	b.shot("setup")

	app := &authenticator{t: b.t, secret: secret}
	b.fill("#code", app.code())
	b.click("form[action$='/setup'] button[type=submit]")
	b.at(prefix + "/codes")
	b.expectHeading("Two-factor authentication is on")
	codes := b.texts("ul.codes li")
	if len(codes) != 10 {
		b.t.Fatalf("the page shows %d backup codes, want 10: %q", len(codes), codes)
	}
	return app, codes
}

func TestBrowser_SignInEnrollRecoverAndSignOutEverywhere(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t) // first: without Chromium the test fails at once
	b := newTab(t, browser, browserSite(t, "alice"))
	defer logScreenshots(t)

	// Gate: the browser lands on the login page, which carries the target.
	b.open("/app/page?x=1&y=two")
	loginURL, _ := url.Parse(b.at(prefix + "/login"))
	if got := loginURL.Query().Get("redirect"); got != "/app/page?x=1&y=two" {
		t.Fatalf("login page redirect = %q, want /app/page?x=1&y=two", got)
	}
	b.expectHeading("Sign in")
	b.checkForm()
	b.shot("login")

	// A wrong password: an error, the user name kept, nothing else.
	b.signIn("alice", "not the password")
	b.at(prefix + "/login")
	if msg := b.alert(); !strings.Contains(msg, "Wrong user name or password") {
		t.Fatalf("after a wrong password the page says %q", msg)
	}
	if got := b.attr("#username", "value"); got != "alice" {
		t.Errorf("after a wrong password the user name field holds %q, want alice", got)
	}
	b.checkForm()
	b.shot("login-wrong-password")

	// The right password: on to enrollment, then the backup codes.
	b.fill("#password", testPassword)
	b.click("button[type=submit]")
	app, codes := b.enrollInBrowser("alice")
	b.shot("codes")

	// Continue: the upstream, with the original path and query.
	b.click("a.continue")
	b.at("/app/page")
	e := b.upstreamEcho()
	if e.Path != "/app/page" || e.Query != "x=1&y=two" {
		t.Errorf("upstream got path %q query %q, want /app/page and x=1&y=two", e.Path, e.Query)
	}
	if got := e.Headers["Remote-User"]; len(got) != 1 || got[0] != "alice" {
		t.Errorf("upstream got Remote-User %q, want alice", got)
	}

	// A page that is not there: the message page, in the same style.
	b.open(prefix + "/no-such-page")
	b.expectHeading("Not found")
	b.shot("not-found")

	// Sign out from the account page.
	b.open(prefix + "/account")
	b.expectHeading("Your account")
	b.click("form[action$='/logout'] button")
	b.at(prefix + "/done")
	b.expectHeading("You are signed out")
	b.open("/app/again?z=3")
	b.at(prefix + "/login")

	// Password and a TOTP code of a later step than enrollment's.
	b.signIn("alice", testPassword)
	b.at(prefix + "/2fa")
	b.expectHeading("Two-factor authentication")
	b.checkForm()
	b.shot("2fa")
	b.fill("#code", "000000")
	b.click("form[action$='/2fa'] button[type=submit]")
	if msg := b.alert(); !strings.Contains(msg, "code is not right") {
		t.Fatalf("after a wrong code the page says %q", msg)
	}
	b.shot("2fa-wrong-code")
	b.fill("#code", app.code())
	b.click("form[action$='/2fa'] button[type=submit]")
	b.at("/app/again")
	if e := b.upstreamEcho(); e.Path != "/app/again" || e.Query != "z=3" {
		t.Errorf("upstream got path %q query %q, want /app/again and z=3", e.Path, e.Query)
	}

	// Recovery: a backup code signs in, and then every page is the one that
	// asks for a fresh set until there is one.
	b.open(prefix + "/account")
	b.click("form[action$='/logout'] button")
	b.open("/app/third")
	b.signIn("alice", testPassword)
	b.at(prefix + "/2fa")
	b.expand("details.backup summary") // a disclosure that opens without JavaScript
	b.fill("#backup-code", codes[0])
	b.shot("2fa-backup-code")
	b.click("form.backup button[type=submit]")
	b.at(prefix + "/backup-codes")
	b.expectHeading("Backup codes")
	b.shot("backup-recovery")
	for _, p := range []string{"/", prefix + "/account", "/app/page?x=1"} {
		b.open(p)
		b.at(prefix + "/backup-codes")
	}
	b.click("form[action$='/backup-codes'] button[type=submit]")
	b.expectHeading("New backup codes")
	fresh := b.texts("ul.codes li")
	if len(fresh) != 10 {
		t.Fatalf("recovery shows %d new backup codes, want 10", len(fresh))
	}
	for _, c := range fresh {
		if slices.Contains(codes, c) {
			t.Errorf("new backup code %s was in the old set", c)
		}
	}
	b.shot("codes-new")
	b.click("a.continue")
	// It goes on to the page last asked for.
	if e := b.upstreamEcho(); e.Path != "/app/page" || e.Query != "x=1" {
		t.Fatalf("after recovery the browser reached %q?%q, want the page it asked for, /app/page?x=1", e.Path, e.Query)
	}

	// The account page: regenerating needs a current code.
	b.open(prefix + "/account")
	b.expectHeading("Your account")
	if s := b.text("main"); !strings.Contains(s, "10 backup codes left") {
		t.Errorf("account page does not count 10 backup codes left:\n%s", s)
	}
	b.checkForm()
	b.shot("account")
	b.fill("#regen-code", app.code())
	b.click("form[action$='/backup-codes'] button[type=submit]")
	b.expectHeading("New backup codes")
	if again := b.texts("ul.codes li"); len(again) != 10 || slices.Equal(again, fresh) {
		t.Fatalf("regenerating from the account page shows %q", again)
	}

	// Sign out everywhere: a cookie copied out of this browser stops working.
	b.open(prefix + "/account")
	thief := b.clientWithCookies()
	if user, status := whoami(t, thief); user != "alice" {
		t.Fatalf("control: the copied cookie does not sign in (status %d)", status)
	}
	b.click("form[action$='/logout-all'] button")
	b.at(prefix + "/done")
	b.expectHeading("You are signed out everywhere")
	if _, status := whoami(t, thief); status != http.StatusUnauthorized {
		t.Errorf("after sign out everywhere the copied cookie gets whoami status %d, want 401", status)
	}
	r := thief.do("GET", "/app/page", nil, "Accept", "text/html")
	if r.status != http.StatusFound || !strings.HasPrefix(r.header.Get("Location"), prefix+"/login") {
		t.Errorf("after sign out everywhere the copied cookie gets %d %s, want 302 to the login page", r.status, r.header.Get("Location"))
	}
	b.open("/app/page")
	b.at(prefix + "/login")
}

func TestBrowser_SignInAndEnrollWithJavaScriptOff(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t) // first: without Chromium the test fails at once
	b := newTab(t, browser, browserSite(t, "bob"))
	defer logScreenshots(t)
	b.disableScripts()

	b.open("/app/nojs?q=1")
	b.at(prefix + "/login")
	b.shot("login-no-js")
	b.signIn("bob", testPassword)
	// Without JavaScript there is no copy button that would do nothing;
	// the key is there to select, and the page works.
	b.at(prefix + "/setup")
	if b.shown("button.copy") {
		t.Error("without JavaScript the setup page shows a copy button")
	}
	b.enrollInBrowser("bob")
	if b.shown("button.print") || !b.shown("a.download") {
		t.Error("without JavaScript the codes page shows a print button, or no download link")
	}
	b.shot("codes-no-js")
	b.click("a.continue")
	b.at("/app/nojs")
	if e := b.upstreamEcho(); e.Query != "q=1" || len(e.Headers["Remote-User"]) != 1 || e.Headers["Remote-User"][0] != "bob" {
		t.Errorf("upstream got query %q Remote-User %q, want q=1 and bob", e.Query, e.Headers["Remote-User"])
	}

	// Sign out and in again: the second factor page, and its backup-code
	// form behind a disclosure that opens without JavaScript.
	b.open(prefix + "/account")
	b.click("form[action$='/logout'] button")
	b.expectHeading("You are signed out")
	b.click("a.continue") // Sign in again
	b.signIn("bob", testPassword)
	b.at(prefix + "/2fa")
	b.expand("details.backup summary")
	b.fill("#backup-code", "NOT-ACODE")
	b.shot("2fa-no-js")
	b.click("form.backup button[type=submit]")
	if msg := b.alert(); !strings.Contains(msg, "code is not right") {
		t.Fatalf("after a wrong backup code the page says %q", msg)
	}
}

func TestBrowser_PagesFollowPrefersColorScheme(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t) // first: without Chromium the test fails at once
	b := newTab(t, browser, browserSite(t, "carol"))
	defer logScreenshots(t)

	b.colorScheme("light")
	b.open(prefix + "/login")
	lightBG, lightFG := b.computed("body", "background-color"), b.computed("body", "color")
	b.shot("login-light")
	b.colorScheme("dark")
	b.open(prefix + "/login")
	darkBG, darkFG := b.computed("body", "background-color"), b.computed("body", "color")
	if lightBG == darkBG || lightFG == darkFG {
		t.Fatalf("body background and text are %s and %s in light mode, %s and %s in dark mode: want both to change",
			lightBG, lightFG, darkBG, darkFG)
	}
	b.shot("login-dark")
	b.signIn("carol", "wrong password")
	b.shot("login-dark-wrong-password")
	b.fill("#password", testPassword)
	b.click("button[type=submit]")
	b.at(prefix + "/setup")
	b.shot("setup-dark")

	// A phone-sized screen.
	b.do("emulate a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	b.open(prefix + "/setup")
	b.shot("setup-dark-phone")
}
