package e2e_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The whole portal flow in a real browser: an app behind a second Caddy's
// forward_auth sends the browser to the portal, which signs it in (with
// enrollment), sets the session cookie on the parent domain and sends it
// back to the app's absolute URL, where the upstream sees the user.
func TestBrowser_PortalSignInThroughForwardAuthReturnsToTheApp(t *testing.T) {
	t.Parallel()
	// Test host names resolve to 127.0.0.1 in this browser only.
	browser := newBrowser(t, chromedp.Flag("host-resolver-rules", "MAP *."+portalDomain+" 127.0.0.1"))
	s := startPortal(t, "allow_groups admins staff")
	b := newTab(t, browser, s.appPort)
	defer logScreenshots(t)

	target := s.appURL() + "/hello?x=1&y=two"
	b.do("open the app", chromedp.Navigate(target))
	loc, err := url.Parse(b.location())
	if err != nil || loc.Scheme+"://"+loc.Host != s.portalURL() || loc.Path != prefix+"/login" {
		t.Fatalf("the app sent the browser to %s, want the portal's login page %s%s/login", b.location(), s.portalURL(), prefix)
	}
	if got := loc.Query().Get("redirect"); got != target {
		t.Fatalf("the login page carries redirect %q, want the app's absolute URL %q", got, target)
	}
	b.base = s.portalURL()
	b.expectHeading("Sign in")
	b.shot("portal-login")
	b.fill("#username", "alice")
	b.fill("#password", testPassword)
	b.click("button[type=submit]")

	b.at(prefix + "/setup")
	secret := b.text("#secret")
	app := &authenticator{t: t, secret: strings.ReplaceAll(secret, " ", "")}
	b.fill("#code", app.code())
	b.click("form[action$='/setup'] button[type=submit]")
	b.expectHeading("Two-factor authentication is on")
	if got := b.attr("a.continue", "href"); got != target {
		t.Fatalf("the page after enrollment continues to %q, want the app's URL %q", got, target)
	}
	b.shot("portal-codes")
	b.click("a.continue")

	if got := b.location(); got != target {
		t.Fatalf("after sign-in the browser is at %s, want %s", got, target)
	}
	e := recordedOf(t, response{status: 200, body: []byte(b.text("body"))})
	if e.URI != "/hello?x=1&y=two" {
		t.Errorf("upstream got %s, want /hello?x=1&y=two", e.URI)
	}
	if id := identity(e, "Remote-User"); len(id) != 1 || id[0] != "Remote-User: alice" {
		t.Errorf("upstream got %q, want Remote-User: alice", id)
	}
	if id := identity(e, "Remote-Groups"); len(id) != 1 || id[0] != "Remote-Groups: admins,staff" {
		t.Errorf("upstream got %q, want Remote-Groups: admins,staff", id)
	}
	b.shot("app")

	// The session cookie belongs to the parent domain, HttpOnly.
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.wikiURL() + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range res.Cookies {
		if c.Name == "totp_auth_session" {
			found = true
			if strings.TrimPrefix(c.Domain, ".") != portalDomain || !c.HTTPOnly {
				t.Errorf("session cookie domain %q HttpOnly %v, want %s and HttpOnly", c.Domain, c.HTTPOnly, portalDomain)
			}
		}
	}
	if !found {
		t.Fatal("the browser sends no session cookie to another site under the parent domain")
	}

	// Another app under the same domain needs no second sign-in.
	b.do("open the wiki", chromedp.Navigate(s.wikiURL()+"/"))
	if got := b.location(); got != s.wikiURL()+"/" {
		t.Fatalf("the wiki sent the signed-in browser to %s", got)
	}
}

// enrollHere confirms the enrollment page the browser shows with a code
// from oathtool and goes on past the backup codes.
func (b *tab) enrollHere() {
	b.t.Helper()
	b.at(prefix + "/setup")
	app := &authenticator{t: b.t, secret: strings.ReplaceAll(b.text("#secret"), " ", "")}
	b.fill("#code", app.code())
	b.click("form[action$='/setup'] button[type=submit]")
	b.expectHeading("Two-factor authentication is on")
	b.click("a.continue")
}

// A signed-in user whom the policy refuses sees a page naming them, not a
// redirect; "Sign in as someone else" leads to the login page with the
// target kept, and another user who may pass ends where the first was
// refused.
func TestBrowser_ForbiddenUserSignsInAsSomeoneElse(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	_, up, port := startPolicySite(t)
	b := newTab(t, browser, port)
	defer logScreenshots(t)

	b.open("/app?x=1")
	b.signIn("carol", testPassword)
	b.enrollHere()
	b.at("/app")
	b.expectHeading("Not allowed")
	if got := b.text("strong.user"); got != "carol" {
		t.Fatalf("the 403 page names %q, want carol", got)
	}
	if up.count() != 0 {
		t.Fatal("carol's request reached the upstream")
	}
	b.shot("forbidden")

	b.click("form:has(input[name=redirect]) button[type=submit]")
	loc, _ := url.Parse(b.location())
	if loc.Path != prefix+"/login" || loc.Query().Get("redirect") != "/app?x=1" {
		t.Fatalf("sign in as someone else led to %s, want the login page for /app?x=1", b.location())
	}
	b.expectHeading("Sign in")
	b.signIn("bob", testPassword)
	b.enrollHere()
	b.at("/app")
	e := recordedOf(t, response{status: 200, body: []byte(b.text("body"))})
	if e.URI != "/app?x=1" {
		t.Errorf("upstream got %s, want /app?x=1", e.URI)
	}
	if id := identity(e, "Remote-User"); len(id) != 1 || id[0] != "Remote-User: bob" {
		t.Errorf("upstream got %q, want Remote-User: bob", id)
	}
}

// A returning user signs in through the portal again, with a code from the
// app and later with a backup code, behind a second Caddy and behind
// nginx, and lands on the app each time: the post of the second factor
// must not end in a redirect the page's form-action forbids.
func TestBrowser_PortalSecondSignInReturnsToTheApp(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t, chromedp.Flag("host-resolver-rules", "MAP *."+portalDomain+" 127.0.0.1"))
	s := startPortal(t)
	s.startNginx(t)
	for _, tt := range []struct {
		name, user, origin string
	}{
		{"behind Caddy's forward_auth", "alice", s.appURL()},
		{"behind nginx's auth_request", "bob", s.nginxURL()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer logScreenshots(t)
			target := tt.origin + "/hello?x=1&y=two"
			var app *authenticator

			// First sign-in: enrollment, which ends on a link.
			b := portalTab(t, browser, s)
			b.passwordAtPortal(target, tt.user)
			b.at(prefix + "/setup")
			app = &authenticator{t: t, secret: strings.ReplaceAll(b.text("#secret"), " ", "")}
			b.fill("#code", app.code())
			b.click("form[action$='/setup'] button[type=submit]")
			codes := b.texts("ul.codes li")
			b.click("a.continue")
			b.expectApp(target, tt.user)

			// Second sign-in, in a new browser context: a code from the app.
			b = portalTab(t, browser, s)
			b.passwordAtPortal(target, tt.user)
			b.at(prefix + "/2fa")
			b.fill("#code", app.code())
			b.click("form[action$='/2fa'] button[type=submit]")
			b.expectApp(target, tt.user)

			// Third sign-in: a backup code, then a fresh set, then the app.
			b = portalTab(t, browser, s)
			b.passwordAtPortal(target, tt.user)
			b.at(prefix + "/2fa")
			b.expand("details.backup summary")
			b.fill("#backup-code", codes[0])
			b.click("form.backup button[type=submit]")
			b.at(prefix + "/backup-codes")
			b.click("form[action$='/backup-codes'] button[type=submit]")
			b.at(prefix + "/codes")
			b.click("a.continue")
			b.expectApp(target, tt.user)
		})
	}
}

// portalTab opens a tab in a fresh browser context (no cookies) whose
// pages are the portal's.
func portalTab(t *testing.T, browser context.Context, s *portalSetup) *tab {
	t.Helper()
	b := newTab(t, browser, s.portalPort)
	b.base = s.portalURL()
	return b
}

// passwordAtPortal opens target, which sends the browser to the portal's
// login page, and signs in there with user's password.
func (b *tab) passwordAtPortal(target, user string) {
	b.t.Helper()
	b.do("open the app", chromedp.Navigate(target))
	b.at(prefix + "/login")
	b.fill("#username", user)
	b.fill("#password", testPassword)
	b.click("button[type=submit]")
}

// expectApp waits until the browser shows target, the upstream's answer
// for user.
func (b *tab) expectApp(target, user string) {
	b.t.Helper()
	// The address changes when the app's page commits, a moment before
	// its document can be read: wait for both.
	var body string
	for deadline := time.Now().Add(stepTimeout); ; time.Sleep(50 * time.Millisecond) {
		loc := b.location()
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"), chromedp.NodeReady))
		cancel()
		if loc == target && err == nil && strings.Contains(text, "Remote-User") {
			body = text
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the browser is at %s, want the app's page at %s\npage (%v): %s", loc, target, err, text)
		}
	}
	e := recordedOf(b.t, response{status: 200, body: []byte(strings.TrimSpace(body))})
	if id := identity(e, "Remote-User"); len(id) != 1 || id[0] != "Remote-User: "+user {
		b.t.Fatalf("upstream got %q, want Remote-User: %s", id, user)
	}
}
