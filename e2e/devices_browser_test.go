package e2e_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

const (
	firefoxOnLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	safariOnIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// sessionRows returns the rows of the account page's session list, each
// with its white space made single spaces.
func (b *tab) sessionRows() []string {
	b.t.Helper()
	var rows []string
	for _, r := range b.texts("section[aria-labelledby=h-sessions] li") {
		rows = append(rows, strings.Join(strings.Fields(r), " "))
	}
	return rows
}

// userAgent makes the tab's browser send ua, as another browser would.
func (b *tab) userAgent(ua string) {
	b.t.Helper()
	b.do("send the User-Agent "+ua, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua})
		return err
	}))
}

// TestBrowser_TwoDevicesSeeEachOtherOneEndsTheOtherAndARememberedPhoneSkipsTheCodeAcrossARestart
// is SPEC §16 in Chromium: a laptop and a phone (two browser contexts
// with their own cookies and User-Agents) see each other on the account
// page, the laptop signs the phone out, and the phone, remembered at its
// second factor, signs in again with the password alone, also after
// Caddy restarts.
func TestBrowser_TwoDevicesSeeEachOtherOneEndsTheOtherAndARememberedPhoneSkipsTheCodeAcrossARestart(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	cfg := c.caddyfile("", protectedSite(port, c.totpAuth("totp.db", []string{"alice"}, `issuer "Browser Lab"`, "remember_device 30d"), up))
	c.start(cfg, port)
	defer logScreenshots(t)

	laptop := newTab(t, browser, port)
	laptop.userAgent(firefoxOnLinux)
	laptop.open("/app")
	laptop.signIn("alice", testPassword)
	app, _ := laptop.enrollInBrowser("alice")

	phone := newTab(t, browser, port)
	phone.userAgent(safariOnIPhone)
	phone.open("/app")
	phone.signIn("alice", testPassword)
	phone.at(prefix + "/2fa")
	if got := phone.text("label.check"); got != "Remember this device for 30 days" {
		t.Fatalf("the second factor's checkbox says %q", got)
	}
	phone.shot("second-factor-remember")
	phone.fill("#code", app.code())
	phone.expand("form[action$='/2fa'] input[name=remember]")
	phone.click("form[action$='/2fa'] button[type=submit]")
	phone.at("/app")

	// Each sees both, in words, and which one it is.
	laptop.open(prefix + "/account")
	rows := strings.Join(laptop.sessionRows(), "\n")
	for _, want := range []string{"Firefox on Linux This device", "Safari on iPhone", "127.0.0.1", "authenticator code"} {
		if !strings.Contains(rows, want) {
			t.Errorf("the laptop's session list lacks %q:\n%s", want, rows)
		}
	}
	if strings.Contains(rows, "Mozilla") {
		t.Errorf("the raw User-Agent is shown:\n%s", rows)
	}
	phone.open(prefix + "/account")
	if rows := strings.Join(phone.sessionRows(), "\n"); !strings.Contains(rows, "Safari on iPhone This device") || !strings.Contains(rows, "Firefox on Linux") {
		t.Errorf("the phone's session list:\n%s", rows)
	}
	if devices := strings.Join(phone.texts("section[aria-labelledby=h-devices] li"), "\n"); !strings.Contains(devices, "Safari on iPhone") {
		t.Errorf("the phone is not among the remembered devices:\n%s", devices)
	}
	laptop.look(prefix+"/account", "sessions", "Your account")

	// The laptop signs the phone out.
	laptop.open(prefix + "/account")
	laptop.click("ul.sessions li:not(.current) form[action$='/sessions/end'] button")
	laptop.at(prefix + "/account")
	if rows := laptop.sessionRows(); len(rows) != 1 {
		t.Errorf("after signing the phone out the laptop sees %q", rows)
	}
	phone.open("/app")
	phone.at(prefix + "/login")

	// The phone is still remembered: the password alone, across a restart.
	c.stop()
	c.start(cfg, port)
	phone.signIn("alice", testPassword)
	phone.at("/app")
	laptop.open(prefix + "/account")
	if rows := strings.Join(laptop.sessionRows(), "\n"); !strings.Contains(rows, "password on a remembered device") {
		t.Errorf("the phone's new session is not shown as signed in on a remembered device:\n%s", rows)
	}

	// A laptop that was not remembered still needs the code.
	laptop.click("form[action$='/logout'] button")
	laptop.open("/app")
	laptop.signIn("alice", testPassword)
	laptop.at(prefix + "/2fa")
}
