package e2e_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

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
	if msg := b.alert(); !strings.Contains(msg, "Time on this server: ") || !strings.Contains(msg, "1 attempt left") {
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

// keyLines is how the setup page lays out the key: the number of groups of
// four on each line, such as "4,4", or "split" when a line break falls
// inside a group.
const keyLines = `(() => {
	const tops = [];
	const walk = document.createTreeWalker(document.getElementById("secret"), NodeFilter.SHOW_TEXT);
	for (let n; (n = walk.nextNode()); ) {
		for (const m of n.data.matchAll(/\S+/g)) {
			const r = document.createRange();
			r.setStart(n, m.index);
			r.setEnd(n, m.index + m[0].length);
			const rects = r.getClientRects();
			if (rects.length !== 1) return "split";
			tops.push(Math.round(rects[0].top));
		}
	}
	const counts = [];
	tops.forEach((t, i) => { if (i === 0 || t !== tops[i - 1]) counts.push(0); counts[counts.length - 1]++; });
	return counts.join(",");
})()`

// messageLines is how many lines of text the element sel takes.
func (b *tab) messageLines(sel string) int64 {
	b.t.Helper()
	return get(b, "measure "+sel, chromedp.Evaluate[int64](`(() => {
		const e = document.querySelector(`+"`"+sel+"`"+`), cs = getComputedStyle(e);
		return Math.round((e.clientHeight - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom)) / parseFloat(cs.lineHeight));
	})()`))
}

// A phone cannot scan its own screen: the setup page links the key's
// otpauth URI (the QR code's content) for the phone's authenticator app,
// and the page's CSP lets the browser follow it. The key shows as rows of
// four groups, never a group split or a ragged wrap.
func TestBrowser_EnrollingOnAPhoneOpensTheAppAndKeepsTheKeyInRowsOfFour(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	b := newTab(t, browser, browserSite(t, "alice"))
	defer logScreenshots(t)
	b.open("/app")
	b.signIn("alice", testPassword)
	b.at(prefix + "/setup")
	uri := decodeQR(t, b.attr("img.qr", "src"))
	if href := b.attr("a.open-app", "href"); href != uri || !strings.HasPrefix(href, "otpauth://totp/") {
		t.Fatalf("the link for the authenticator app is %q, want the QR code's URI %q", href, uri)
	}
	for _, sc := range []screen{{"small phone", 320, 640, true}, {"phone", 390, 844, true}, {"desktop", 1024, 760, false}} {
		opts := []chromedp.EmulateViewportOption{}
		if sc.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		b.do("emulate "+sc.name, chromedp.EmulateViewport(sc.width, sc.height, opts...))
		b.open(prefix + "/setup")
		lines := get(b, "lay out the key", chromedp.Evaluate[string](keyLines))
		if lines != "4,4" && (sc.mobile || lines != "8") {
			t.Errorf("on a %s the key's groups of four lie on lines as %q, want 4,4", sc.name, lines)
		}
		b.shot("setup-" + strings.ReplaceAll(sc.name, " ", "-"))
	}
	// Following the link is no CSP violation and leaves the page as it is
	// (here no app takes the URI).
	b.do("watch for CSP violations", chromedp.Evaluate[chromedp.Void](
		`window.violations = []; document.addEventListener("securitypolicyviolation", e => window.violations.push(e.violatedDirective))`))
	b.expand("a.open-app")
	time.Sleep(300 * time.Millisecond)
	if v := get(b, "read violations", chromedp.Evaluate[string](`window.violations.join(",")`)); v != "" {
		t.Fatalf("following the otpauth link violates the CSP: %s", v)
	}
	b.at(prefix + "/setup")
}

// Turning 2FA off where it is required says first that it only forces a
// new enrollment, as a caution (not the green of a success); a wrong code
// keeps the section open, and a wrong code reads in two lines on a phone.
func TestBrowser_TurningOffSaysWhatItDoesAndWrongCodesReadInTwoLines(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	port := browserSite(t, "alice")
	b, app, _ := signedUp(t, browser, port, "alice")
	defer logScreenshots(t)
	b.do("emulate a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))

	b.open(prefix + "/account")
	b.expand("details.danger summary")
	if note := b.text("#disable-note"); !strings.Contains(note, "requires two-factor authentication") || !strings.Contains(note, "sets up an authenticator app again") {
		t.Fatalf("before turning 2FA off the page says %q", note)
	}
	differs := get(b, "compare the caution with a notice", chromedp.Evaluate[bool](`(() => {
		const n = document.createElement("p"); n.className = "notice"; document.querySelector("main").append(n);
		const notice = getComputedStyle(n).backgroundColor, caution = getComputedStyle(document.getElementById("disable-note")).backgroundColor;
		n.remove();
		return notice !== caution && caution !== "rgba(0, 0, 0, 0)";
	})()`))
	if !differs {
		t.Error("the caution before turning 2FA off looks like a success notice")
	}
	b.shot("turn-off-caution")
	b.fill("#disable-password", testPassword)
	b.fill("#disable-code", "000000")
	b.click("form[action$='/disable'] button[type=submit]")
	if open := get(b, "is the section open", chromedp.Evaluate[bool](`document.querySelector("details.danger").open`)); !open {
		t.Fatal("after a wrong code the section to turn 2FA off is closed")
	}
	if msg := b.text("details.danger [role=alert]"); !strings.Contains(msg, "Wrong password or code") || !strings.Contains(msg, "Time on this server") {
		t.Fatalf("the section says %q after a wrong code", msg)
	}
	if n := b.messageLines("details.danger .error"); n > 2 {
		t.Errorf("the wrong-code message takes %d lines on a phone, want 2", n)
	}
	b.shot("turn-off-wrong-code")

	// The second-factor page.
	b.click("form[action$='/logout'] button")
	b.open("/app")
	b.signIn("alice", testPassword)
	b.at(prefix + "/2fa")
	b.fill("#code", "000000")
	b.click("form[action$='/2fa'] button[type=submit]")
	if msg := b.alert(); !strings.Contains(msg, "code is not right") {
		t.Fatalf("a wrong code says %q", msg)
	}
	if n := b.messageLines(".error"); n > 2 {
		t.Errorf("the wrong-code message takes %d lines on a phone, want 2", n)
	}
	b.shot("2fa-wrong-code")
	b.fill("#code", app.code())
	b.click("form[action$='/2fa'] button[type=submit]")
	b.at("/app")
}

// A user kept in the database changes their own password on the account
// page: the current password and a code, a new one that is not common;
// this browser stays signed in, another is signed out, and the new
// password is the one that works.
func TestBrowser_ChangeYourOwnPassword(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", protectedSite(port, c.totpAuth("totp.db", []string{"alice"}, `issuer "Browser Lab"`), up)), port)
	if out, err := c.cli(testPassword+"\n", nil, "user", "add", "dave", "--cost", "4"); err != nil {
		t.Fatalf("user add dave: %v\n%s", err, out)
	}
	b, app, _ := signedUp(t, browser, port, "dave")
	defer logScreenshots(t)
	other := newTab(t, browser, port)
	other.open("/app")
	other.signIn("dave", testPassword)
	other.fill("#code", app.code())
	other.click("form[action$='/2fa'] button[type=submit]")
	other.at("/app")

	b.open(prefix + "/account")
	b.expand("details.password summary")
	b.checkForm()
	b.fill("#pw-current", testPassword)
	b.docShot("password-desktop-light")
	b.fill("#pw-new", "password1")
	b.fill("#pw-code", app.code())
	b.click("form[action$='/password'] button[type=submit]")
	if msg := b.text("details.password [role=alert]"); !strings.Contains(msg, "most common passwords") {
		t.Fatalf("a common new password: the page says %q", msg)
	}
	b.shot("password-common")
	const newPassword = "plum umbrella seventeen"
	b.fill("#pw-current", testPassword)
	b.fill("#pw-new", newPassword)
	b.fill("#pw-code", app.code())
	b.click("form[action$='/password'] button[type=submit]")
	b.at(prefix + "/done")
	b.expectHeading("Your password is changed")
	b.shot("password-changed")
	b.docShot("password-changed-desktop-light")
	b.reload() // a page a reload cannot post again
	b.expectHeading("Your password is changed")
	b.open("/app")
	b.at("/app")

	other.open("/app")
	other.at(prefix + "/login")
	other.signIn("dave", testPassword)
	if msg := other.alert(); !strings.Contains(msg, "Wrong user name or password") {
		t.Fatalf("the old password: the page says %q", msg)
	}
	other.fill("#password", newPassword) // the name is still filled in
	other.click("button[type=submit]")
	other.at(prefix + "/2fa")
}
