package e2e_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// Pages a person can trust (SPEC §10), in a real browser: reloads and
// resent forms, codes shown once, a way out of every page, pages that say
// what happened, and a copy button that only exists with JavaScript.

// browserSiteWith is browserSite with extra totp_auth settings.
func browserSiteWith(t *testing.T, extra []string, users ...string) int {
	t.Helper()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", protectedSite(port, c.totpAuth("totp.db", users, append([]string{`issuer "Browser Lab"`}, extra...)...), up)), port)
	return port
}

// reload reloads the page as a person pressing F5 does: a page that
// answered a post is posted again.
func (b *tab) reload() {
	b.t.Helper()
	b.do("reload", chromedp.Reload())
}

// shown reports whether the first element sel is displayed.
func (b *tab) shown(sel string) bool {
	b.t.Helper()
	return b.computed(sel, "display") != "none"
}

// signedUp enrolls user in a fresh tab and returns the tab (on the codes
// page), the authenticator and the backup codes.
func signedUp(t *testing.T, browser context.Context, port int, user string) (*tab, *authenticator, []string) {
	t.Helper()
	b := newTab(t, browser, port)
	b.open("/app")
	b.signIn(user, testPassword)
	app, codes := b.enrollInBrowser(user)
	return b, app, codes
}

func TestBrowser_ReloadingAFailedFormCostsNothing(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	b := newTab(t, browser, browserSiteWith(t, []string{"max_failures 4"}, "alice"))
	defer logScreenshots(t)

	b.open("/app/page")
	b.signIn("alice", "wrong password")
	if msg := b.alert(); !strings.Contains(msg, "Wrong user name or password") || strings.Contains(msg, "left") {
		t.Fatalf("after one wrong password of four the page says %q", msg)
	}
	// The answer to a post: a reload posts the form again. It is known by
	// its one-time token, costs no attempt and shows no error.
	for range 2 {
		b.reload()
		b.at(prefix + "/login")
		if msg := b.alert(); msg != "" {
			t.Fatalf("a reload of the failed sign-in shows %q, want no error", msg)
		}
	}
	b.shot("login-after-reload")
	b.signIn("alice", "wrong again")
	if msg := b.alert(); !strings.Contains(msg, "2 attempts left") {
		t.Fatalf("the second wrong password of four says %q, want 2 attempts left: the reloads were counted", msg)
	}
	b.fill("#password", testPassword)
	b.click("button[type=submit]")
	b.at(prefix + "/setup")

	// The same on the setup page: a wrong code, then a reload.
	b.fill("#code", "000000")
	b.click("form[action$='/setup'] button[type=submit]")
	if msg := b.alert(); !strings.Contains(msg, "The time on this server is") || !strings.Contains(msg, "1 attempt left") {
		t.Fatalf("a wrong code at setup says %q, want the server's time and 1 attempt left", msg)
	}
	b.reload()
	b.at(prefix + "/setup")
	if msg := b.alert(); msg != "" {
		t.Fatalf("a reload of the failed setup shows %q", msg)
	}
	b.enrollInBrowser("alice") // the last attempt is still there
}

func TestBrowser_BackupCodesShownOnceToTheSessionThatMadeThem(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	port := browserSite(t, "alice")
	b, app, codes := signedUp(t, browser, port, "alice")
	defer logScreenshots(t)

	// The codes page is reached by a redirect: a reload shows it again.
	b.reload()
	b.at(prefix + "/codes")
	if again := b.texts("ul.codes li"); !slices.Equal(again, codes) {
		t.Fatalf("a reload shows %q, want the same codes %q", again, codes)
	}
	if sheet := b.text(".sheet"); !strings.Contains(sheet, "alice") || !strings.Contains(sheet, "Browser Lab") {
		t.Errorf("the printable sheet says %q, want the user and the site", sheet)
	}
	if !b.shown("button.print") || !b.shown("a.download") {
		t.Errorf("with JavaScript the codes page lacks a print button or a download link")
	}

	// Another browser signed in as the same user sees none of them.
	other := newTab(t, browser, port)
	other.open("/app")
	other.signIn("alice", testPassword)
	other.fill("#code", app.code())
	other.click("form[action$='/2fa'] button[type=submit]")
	other.open(prefix + "/codes")
	other.expectHeading("Backup codes are shown once")
	if got := other.texts("ul.codes li"); len(got) != 0 {
		t.Fatalf("another session sees backup codes %q", got)
	}
	other.shot("codes-other-session")
}

func TestBrowser_CancelAndSignOutFromEnrollmentAndSecondFactor(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	port := browserSite(t, "alice", "bob")
	defer logScreenshots(t)

	// First enrollment: a way out.
	b := newTab(t, browser, port)
	b.open("/app")
	b.signIn("bob", testPassword)
	b.at(prefix + "/setup")
	b.click("form[action$='/logout'] button")
	b.at(prefix + "/done")
	b.expectHeading("You are signed out")
	b.open(prefix + "/setup")
	b.at(prefix + "/login")

	// The second-factor page too.
	a, _, _ := signedUp(t, browser, port, "alice")
	a.open(prefix + "/account")
	a.click("form[action$='/logout'] button")
	a.open("/app")
	a.signIn("alice", testPassword)
	a.at(prefix + "/2fa")
	a.click("form.aside[action$='/logout'] button")
	a.at(prefix + "/done")
	a.expectHeading("You are signed out")
	a.shot("cancelled")
	a.open(prefix + "/2fa")
	a.at(prefix + "/login")
}

func TestBrowser_EveryActionEndsOnAPageThatSaysWhatHappened(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	b, app, _ := signedUp(t, browser, browserSite(t, "alice"), "alice")
	defer logScreenshots(t)

	// The account page leads back to where the user came from.
	b.open(prefix + "/account?redirect=%2Fapp%2Fdashboard%3Fid%3D7")
	b.click("a.back")
	if e := b.upstreamEcho(); e.Path != "/app/dashboard" || e.Query != "id=7" {
		t.Fatalf("the account page's back link led to %s?%s", e.Path, e.Query)
	}

	// New backup codes.
	b.open(prefix + "/account")
	b.fill("#regen-code", app.code())
	b.click("form[action$='/backup-codes'] button[type=submit]")
	b.at(prefix + "/codes")
	b.expectHeading("New backup codes")
	b.click("a.continue")
	b.at(prefix + "/account")

	// Moving to a new app asks for the password before any key is shown
	// (SPEC §4 rule 21), then says what happens to the backup codes.
	b.open(prefix + "/setup")
	b.expectHeading("Move to a new authenticator app")
	if s := b.text("main"); strings.Contains(s, "Add the account by hand") || !strings.Contains(s, "Enter your password") {
		t.Fatalf("the move page before the password says %q", s)
	}
	b.fill("#password", testPassword)
	b.click("form[action$='/setup'] button[type=submit]")
	b.at(prefix + "/setup")
	b.expectHeading("Move to a new authenticator app")
	if note := b.text("#codes-note"); !strings.Contains(note, "new set of 10 backup codes") || !strings.Contains(note, "10 backup codes you have now stop working") {
		t.Errorf("the move page says %q about the backup codes", note)
	}
	b.shot("move")
	newApp := &authenticator{t: t, secret: strings.ReplaceAll(b.text("#secret"), " ", "")}
	b.fill("#code", newApp.code())
	b.click("form[action$='/setup'] button[type=submit]")
	b.at(prefix + "/codes")
	b.expectHeading("You moved to a new authenticator app")

	// Turning 2FA off: this site requires it, so the user is signed out.
	b.open(prefix + "/account")
	b.expand("details.danger summary")
	b.fill("#disable-password", testPassword)
	b.fill("#disable-code", newApp.code())
	b.click("form[action$='/disable'] button[type=submit]")
	b.at(prefix + "/done")
	b.expectHeading("Two-factor authentication is off")
	if s := b.text("main"); !strings.Contains(s, "signed out") || !strings.Contains(s, "sets up an app again") {
		t.Errorf("the page after turning 2FA off says %q", s)
	}
	b.shot("two-factor-off")
}

func TestBrowser_CopyButtonCopiesTheKey(t *testing.T) {
	t.Parallel()
	browserCtx := newBrowser(t)
	port := browserSite(t, "alice")
	b := newTab(t, browserCtx, port)
	defer logScreenshots(t)
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(b.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted,
			Origin: b.base, BrowserContextID: chromedp.FromContext(b.ctx).BrowserContextID,
		}); err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}
	b.open("/app")
	b.signIn("alice", testPassword)
	b.at(prefix + "/setup")
	if !b.shown("button.copy") {
		t.Fatal("with JavaScript the setup page shows no copy button")
	}
	b.expand("button.copy")
	b.do("wait for the copy", chromedp.Poll[chromedp.Void](`document.querySelector("button.copy").textContent === "Copied"`))
	copied := get(b, "read the clipboard", chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if want := strings.ReplaceAll(b.text("#secret"), " ", ""); copied != want {
		t.Fatalf("the copy button copied %q, want the key %q", copied, want)
	}
	b.shot("copied")
}
