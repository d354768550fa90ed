package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// readmeScreenshotsEnv names the folder that receives the README's
// screenshots (`make screenshots` sets it to docs/screenshots); without
// it they go to the test's own screenshot folder only.
const readmeScreenshotsEnv = "README_SCREENSHOTS"

// readmeShots are the screenshots the README shows.
var readmeShots = map[string]bool{
	"sign-in-desktop-light": true, "sign-in-phone-dark": true,
	"enrollment-desktop-light": true, "enrollment-phone-dark": true,
	"backup-codes-desktop-light": true, "backup-codes-phone-dark": true,
	"account-desktop-light": true, "account-phone-dark": true,
	"sessions-desktop-light": true, "sessions-phone-dark": true,
}

// screen is one way a page is looked at.
type screen struct {
	name          string // phone, desktop
	width, height int64
	mobile        bool
}

var screens = []screen{
	{name: "desktop", width: 1024, height: 760},
	{name: "phone", width: 390, height: 844, mobile: true},
}

// look shows the page at path on every screen in both color schemes,
// checks that nothing sticks out sideways and that the page's heading is
// want, and saves a screenshot of each as <name>-<screen>-<scheme>.png.
func (b *tab) look(path, name, want string) {
	b.t.Helper()
	for _, sc := range screens {
		for _, scheme := range []string{"light", "dark"} {
			opts := []chromedp.EmulateViewportOption{}
			if sc.mobile {
				opts = append(opts, chromedp.EmulateMobile)
			}
			b.do("emulate "+sc.name, chromedp.EmulateViewport(sc.width, sc.height, opts...))
			b.colorScheme(scheme)
			b.open(path)
			b.expectHeading(want)
			overflow := get(b, "measure the page", chromedp.Evaluate[int64](
				`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
			if overflow > 0 {
				b.t.Errorf("%s on a %s screen (%s) is %d px wider than the screen", name, sc.name, scheme, overflow)
			}
			shot := fmt.Sprintf("%s-%s-%s", name, sc.name, scheme)
			b.shot(shot)
			if readmeShots[shot] {
				b.docShot(shot)
			}
		}
	}
}

// docShot saves the page as it is now as <name>.png into the
// documentation's screenshots when make screenshots asks for them: for a
// page in a state that only a step of a test brings about (a section
// opened, a form filled in).
func (b *tab) docShot(name string) {
	b.t.Helper()
	dir := os.Getenv(readmeScreenshotsEnv)
	if dir == "" {
		return
	}
	png := get(b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// TestBrowser_PagesAtPhoneAndDesktopWidthInLightAndDark looks at the
// sign-in, enrollment, backup-code and account pages as a person does on
// a phone and on a desktop, in light and dark mode, and takes the
// README's screenshots of them.
func TestBrowser_PagesAtPhoneAndDesktopWidthInLightAndDark(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	b := newTab(t, browser, browserSite(t, "alice"))
	defer logScreenshots(t)

	b.look(prefix+"/login?redirect=%2Fgrafana%2F", "sign-in", "Sign in")
	b.signIn("alice", testPassword)
	b.at(prefix + "/setup")
	b.look(prefix+"/setup", "enrollment", "Set up two-factor authentication")
	app, _ := b.enrollInBrowser("alice")
	b.look(prefix+"/codes", "backup-codes", "Two-factor authentication is on")
	b.look(prefix+"/account", "account", "Your account")
	b.open(prefix + "/account")
	b.click("form[action$='/logout'] button")
	b.open("/app")
	b.signIn("alice", testPassword)
	b.look(prefix+"/2fa", "second-factor", "Two-factor authentication")
	b.fill("#code", app.code())
	b.click("form[action$='/2fa'] button[type=submit]")
}
