package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// browserTimeout bounds one browser test from the start of Chromium to its
// last check; stepTimeout bounds each action in it.
const (
	browserTimeout = 90 * time.Second
	stepTimeout    = 15 * time.Second
)

// chromiumPath returns the Chromium binary. Without one the test fails: a
// skipped browser test would prove nothing.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium or chromium-browser in PATH: run `make test-deps` (it installs Debian's chromium package)")
	return ""
}

// newBrowser starts a headless Chromium for t, with a profile of its own in
// the test's directory, and returns the context of its first tab. The
// browser ends with the test. extra adds command-line options.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	bin := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	t.Cleanup(cancel)
	var output logBuffer
	// Without the background-networking flags Chromium tries to reach
	// Google's services at start, which a closed network refuses.
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // tests may run as root, where the sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
		chromedp.WindowSize(1024, 800),
		chromedp.CombinedOutput(&output),
	}, extra...)...,
	)
	ctx, cancelBrowser := chromedp.NewContext(ctx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium output:\n%s", tail(output.String(), 8<<10))
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	return ctx
}

// tab is one browser window on one site, in a browser context of its own
// (its own cookies), that saves a screenshot of each page it is asked to.
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string // http://127.0.0.1:port
	shots string // directory of the screenshots
	n     int    // screenshots taken
}

// screenshotDirs is where each test's screenshots went, for the log.
var screenshotDirs sync.Map

// keepScreenshotsEnv names a directory that keeps the screenshots after
// the run; by default they go to the test's temporary directory, which
// goes away with the test.
const keepScreenshotsEnv = "E2E_SCREENSHOTS"

// screenshotDir returns the directory of t's screenshots.
func screenshotDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "screenshots")
	if keep := os.Getenv(keepScreenshotsEnv); keep != "" {
		dir = filepath.Join(keep, t.Name())
	}
	d, _ := screenshotDirs.LoadOrStore(t.Name(), dir)
	return d.(string)
}

// newTab opens a tab on the site at port in a fresh browser context of
// browser. Its screenshots go to screenshotDir(t).
func newTab(t *testing.T, browser context.Context, port int) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	b := &tab{t: t, ctx: ctx, base: fmt.Sprintf("http://127.0.0.1:%d", port), shots: screenshotDir(t)}
	// The first action on a context creates its tab, which lives as long
	// as the context of that action: so not a step's, with its timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return b
}

// do runs steps within stepTimeout, failing the test with what and the
// page's address when they fail.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s (at %s): %v", what, b.location(), err)
	}
}

// get runs one action that returns a value, as do does.
func get[T any](b *tab, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s (at %s): %v", what, b.location(), err)
	}
	return v
}

// location returns the page's address, or why it is unknown.
func (b *tab) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "unknown address: " + err.Error()
	}
	return loc
}

// open navigates to path on the site and waits for the page to load.
func (b *tab) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
}

// fill types text into the input sel, key by key, as a person would.
func (b *tab) fill(sel, text string) {
	b.t.Helper()
	b.do("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible))
}

// click clicks the element sel and waits for the page it leads to to load.
func (b *tab) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.WaitEvent(page.LoadEventFired, nil,
			chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))(ctx, t)
		return err
	}))
}

// expand clicks the element sel, which changes the page without loading
// another, such as the <summary> of a <details>.
func (b *tab) expand(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// at returns the path and query of the page, failing the test unless its
// path is want.
func (b *tab) at(want string) string {
	b.t.Helper()
	loc := b.location()
	u, err := url.Parse(loc)
	if err != nil || u.Scheme+"://"+u.Host != b.base {
		b.t.Fatalf("browser is at %s, want %s%s", loc, b.base, want)
	}
	if u.Path != want {
		b.t.Fatalf("browser is at %s, want path %s\npage: %s", u.RequestURI(), want, b.text("body"))
	}
	return u.RequestURI()
}

// text returns the text of the first element sel.
func (b *tab) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(get(b, "read "+sel, chromedp.Text(chromedp.CSS(sel), chromedp.NodeReady)))
}

// texts returns the text of every element sel (none is no error).
func (b *tab) texts(sel string) []string {
	b.t.Helper()
	nodes := get(b, "find "+sel, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
	var out []string
	for _, n := range nodes {
		s := get(b, "read "+sel, chromedp.Text(chromedp.NodeIDs{n.NodeID}, chromedp.NodeReady))
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// attrs returns the attributes of every element sel (none is no error).
func (b *tab) attrs(sel string) []map[string]string {
	b.t.Helper()
	return get(b, "read attributes of "+sel, chromedp.AttributesAll(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
}

// attr returns the attribute name of the first element sel.
func (b *tab) attr(sel, name string) string {
	b.t.Helper()
	r := get(b, "read "+name+" of "+sel, chromedp.AttributeValue(chromedp.CSS(sel), name, chromedp.NodeReady))
	if !r.Exists {
		b.t.Fatalf("%s has no %s attribute", sel, name)
	}
	return r.Value
}

// shot saves a full-page screenshot as <n>-<name>.png.
func (b *tab) shot(name string) {
	b.t.Helper()
	png := get(b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		b.t.Fatal(err)
	}
	b.n++
	file := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// checkForm checks what every form page must have: a <label for=…> naming
// each input a person sees, and the TOTP code inputs (id code, regen-code,
// disable-code) set up for one-time codes on a numeric keypad.
func (b *tab) checkForm() {
	b.t.Helper()
	labels := map[string]bool{}
	for _, l := range b.attrs("label[for]") {
		labels[l["for"]] = true
	}
	inputs := 0
	for _, in := range b.attrs("input, select, textarea") {
		if in["type"] == "hidden" {
			continue
		}
		inputs++
		id := in["id"]
		if id == "" || !labels[id] {
			b.t.Errorf("%s: input %q (id %q) has no <label for=%q>", b.heading(), in["name"], id, id)
		}
		if in["name"] == "code" && id != "backup-code" {
			if in["autocomplete"] != "one-time-code" || in["inputmode"] != "numeric" {
				b.t.Errorf("%s: code input %q has autocomplete=%q inputmode=%q, want one-time-code and numeric",
					b.heading(), id, in["autocomplete"], in["inputmode"])
			}
		}
	}
	if inputs == 0 {
		b.t.Errorf("%s: checkForm on a page without inputs", b.heading())
	}
}

// heading returns the page's <h1>.
func (b *tab) heading() string {
	b.t.Helper()
	return b.text("h1")
}

// expectHeading fails the test unless the page's <h1> is want.
func (b *tab) expectHeading(want string) {
	b.t.Helper()
	if got := b.heading(); got != want {
		b.t.Fatalf("page at %s has heading %q, want %q\npage: %s", b.location(), got, want, b.text("body"))
	}
}

// alert returns the text of the page's error message, "" without one.
func (b *tab) alert() string {
	b.t.Helper()
	s := b.texts(`[role=alert]`)
	return strings.Join(s, " ")
}

// upstreamEcho returns what the upstream received for the page the browser
// shows, which is the upstream's JSON answer.
func (b *tab) upstreamEcho() echo {
	b.t.Helper()
	body := b.text("body")
	var e echo
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		b.t.Fatalf("page at %s is not the upstream's answer: %v\n%s", b.location(), err, body)
	}
	return e
}

// cookies returns the browser's cookies for the site.
func (b *tab) cookies() []*http.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/"}})
	if err != nil {
		b.t.Fatalf("read cookies: %v", err)
	}
	var out []*http.Cookie
	for _, c := range res.Cookies {
		out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
	}
	return out
}

// clientWithCookies returns an HTTP client for the site holding a copy of
// the browser's cookies, as one who copied them out of the browser would.
func (b *tab) clientWithCookies() *client {
	b.t.Helper()
	c := newClient(b.t, 0)
	c.base = b.base
	u, _ := url.Parse(b.base)
	c.http.Jar.SetCookies(u, b.cookies())
	return c
}

// disableScripts turns JavaScript off in the tab and proves it is off: a
// page whose script would rewrite its title keeps its own.
func (b *tab) disableScripts() {
	b.t.Helper()
	b.do("disable JavaScript", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
	b.do("open a page with a script", chromedp.Navigate(
		"data:text/html,<title>static</title><script>document.title='scripted'</script>"))
	if title := get(b, "read the title", chromedp.Title()); title != "static" {
		b.t.Fatalf("JavaScript still runs: the title is %q", title)
	}
}

// colorScheme makes the tab's pages see prefers-color-scheme: scheme.
func (b *tab) colorScheme(scheme string) {
	b.t.Helper()
	b.do("emulate prefers-color-scheme: "+scheme, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// computed returns the computed value of the CSS property of the first
// element sel.
func (b *tab) computed(sel, property string) string {
	b.t.Helper()
	props := get(b, "compute the style of "+sel, chromedp.ComputedStyle(chromedp.CSS(sel), chromedp.NodeReady))
	i := slices.IndexFunc(props, func(p *css.ComputedStyleProperty) bool { return p.Name == property })
	if i < 0 {
		b.t.Fatalf("%s has no computed %s", sel, property)
	}
	return props[i].Value
}

// authenticator is the test's TOTP app: it computes codes with oathtool and
// never gives the same 30-second step twice, since the server accepts each
// step once (SPEC §4.2). It picks the earliest unused step the server's
// default drift (±1 step) accepts now and for a few seconds to come, so a
// flow needs no waiting for the clock.
type authenticator struct {
	t      *testing.T
	secret string
	last   int64 // the last step used
}

func (a *authenticator) code() string {
	a.t.Helper()
	const margin = 5 * time.Second
	for {
		now := time.Now()
		lo := now.Add(margin).Unix()/30 - 1 // still accepted margin from now
		hi := now.Unix()/30 + 1
		step := max(lo, a.last+1)
		if step <= hi {
			a.last = step
			return totp(a.t, a.secret, time.Unix(step*30, 0))
		}
		// Every step the server accepts is used up: wait for the next.
		time.Sleep(time.Until(time.Unix((now.Unix()/30+1)*30, 0)) + 100*time.Millisecond)
	}
}
