package gateway_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/memstore"
)

// fakeClock is a settable clock shared by the gateway under test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testPassword is every test user's password; hashes use bcrypt's minimum
// cost so tests stay fast.
const testPassword = "correct horse battery staple"

var (
	hashOnce sync.Once
	testHash []byte
)

func passwordHash(t testing.TB) []byte {
	hashOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		testHash = h
	})
	return testHash
}

// env is a gateway in front of an upstream that echoes what it received.
type env struct {
	t        testing.TB
	gw       *gateway.Gateway
	clock    *fakeClock
	store    *memstore.Store
	srv      *httptest.Server
	logs     *observer.ObservedLogs
	upstream chan http.Header
	// failing makes every SessionState call fail, to prove the gate fails closed.
	failing atomic.Bool
}

var errBoom = errors.New("store unavailable")

// faultyStore fails SessionState while its env says so.
type faultyStore struct {
	account.Store
	e *env
}

func (s faultyStore) SessionState(user string) (account.SessionState, error) {
	if s.e.failing.Load() {
		return account.SessionState{}, errBoom
	}
	return s.Store.SessionState(user)
}

func newEnv(t testing.TB, mods ...func(*gateway.Config)) *env {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	e := &env{
		t:        t,
		clock:    &fakeClock{t: time.Date(2026, 11, 24, 12, 0, 7, 0, time.UTC)},
		store:    memstore.New(),
		logs:     logs,
		upstream: make(chan http.Header, 100),
	}
	cfg := gateway.Config{
		Issuer:         "Test Lab",
		Users:          map[string][]byte{"alice": passwordHash(t), "bob": passwordHash(t)},
		Store:          faultyStore{Store: e.store, e: e},
		Clock:          e.clock,
		Logger:         zap.New(core),
		BackupCodeCost: bcrypt.MinCost,
	}
	for _, m := range mods {
		m(&cfg)
	}
	gw, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = gw
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case e.upstream <- r.Header.Clone():
		default:
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "upstream "+r.URL.RequestURI()+" user="+r.Header.Get("Remote-User"))
	})
	e.srv = httptest.NewServer(gw.Middleware(upstream))
	t.Cleanup(e.srv.Close)
	return e
}

// client is one browser or API client with its own cookie jar.
type client struct {
	e    *env
	http *http.Client
	jar  http.CookieJar
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, jar: jar, http: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	*http.Response
	Body string
	JSON map[string]any
}

func (c *client) do(req *http.Request) response {
	c.e.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := response{Response: resp, Body: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(b, &out.JSON)
	}
	return out
}

// getJSON sends a GET as an API client.
func (c *client) getJSON(path string) response {
	req, _ := http.NewRequest("GET", c.e.srv.URL+path, nil)
	req.Header.Set("Accept", "application/json")
	return c.do(req)
}

// getHTML sends a GET as a browser.
func (c *client) getHTML(path string) response {
	req, _ := http.NewRequest("GET", c.e.srv.URL+path, nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	return c.do(req)
}

// postJSON sends a JSON body as an API client.
func (c *client) postJSON(path string, body map[string]string) response {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", c.e.srv.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return c.do(req)
}

// postForm sends a form as a browser would, with the CSRF token the page
// at pagePath carries.
// login posts the password step as a JSON client does and returns the
// answer.
func (c *client) login(user, password string) response {
	c.e.t.Helper()
	return c.postJSON("/.totp-auth/login", map[string]string{"username": user, "password": password})
}

func (c *client) postForm(pagePath, path string, vals url.Values) response {
	c.e.t.Helper()
	page := c.getHTML(pagePath)
	vals.Set("csrf", formValue(c.e.t, page.Body, "csrf"))
	req, _ := http.NewRequest("POST", c.e.srv.URL+path, strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Origin", c.e.srv.URL)
	return c.do(req)
}

// formValue pulls a hidden input's value out of a page.
func formValue(t testing.TB, html, name string) string {
	t.Helper()
	marker := `name="` + name + `" value="`
	i := strings.Index(html, marker)
	if i < 0 {
		t.Fatalf("no %s field in page:\n%s", name, html)
	}
	rest := html[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

// code returns the TOTP code for secret at the fake clock's time plus
// offset steps.
func (e *env) code(secret string, offset int) string {
	e.t.Helper()
	c, err := totp.GenerateCodeCustom(secret, e.clock.Now().Add(time.Duration(offset)*30*time.Second), totp.ValidateOpts{
		Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// enroll signs user in for the first time over the JSON API and returns the
// TOTP secret and backup codes.
func (c *client) enroll(user string) (secret string, codes []string) {
	t := c.e.t
	t.Helper()
	r := c.login(user, testPassword)
	if r.StatusCode != 200 || r.JSON["status"] != "enroll_required" {
		t.Fatalf("login: %d %s", r.StatusCode, r.Body)
	}
	r = c.getJSON("/.totp-auth/setup")
	if r.StatusCode != 200 {
		t.Fatalf("setup: %d %s", r.StatusCode, r.Body)
	}
	secret = r.JSON["secret"].(string)
	r = c.postJSON("/.totp-auth/setup", map[string]string{"code": c.e.code(secret, 0)})
	if r.StatusCode != 200 || r.JSON["status"] != "ok" {
		t.Fatalf("confirm setup: %d %s", r.StatusCode, r.Body)
	}
	for _, v := range r.JSON["backup_codes"].([]any) {
		codes = append(codes, v.(string))
	}
	return secret, codes
}

// signIn does password + code for an enrolled user; the clock moves one
// step first so the code is not a replay of the last one.
func (c *client) signIn(user, secret string) {
	t := c.e.t
	t.Helper()
	c.e.clock.Advance(30 * time.Second)
	r := c.login(user, testPassword)
	if r.StatusCode != 200 || r.JSON["status"] != "2fa_required" {
		t.Fatalf("login: %d %s", r.StatusCode, r.Body)
	}
	r = c.postJSON("/.totp-auth/2fa", map[string]string{"code": c.e.code(secret, 0)})
	if r.StatusCode != 200 || r.JSON["status"] != "ok" {
		t.Fatalf("2fa: %d %s", r.StatusCode, r.Body)
	}
}

// cookie returns the named cookie the client holds for the server.
func (c *client) cookie(name string) *http.Cookie {
	u, _ := url.Parse(c.e.srv.URL)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

func zapString(key, val string) zap.Field { return zap.String(key, val) }

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
