package e2e_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// prefix is where the gateway's pages live unless a test configures another.
const prefix = "/.totp-auth"

// testKey is the encryption_key of every test database.
const testKey = "6f1c0e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e"

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that no earlier call in this run returned.
func freePort(t *testing.T) int {
	t.Helper()
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// The system hands a port it just took back out again: a test
		// that asks twice (a site and an admin endpoint) would get both
		// on one address, and Caddy would serve both on one listener.
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
}

// handedOut is every port freePort has returned in this run.
var handedOut = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: make(map[int]bool)}

// logBuffer collects Caddy's output for tests to search.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// caddyProc is one Caddy process of one test, with its own directory for
// the Caddyfile, Caddy's storage and data, and the totp_auth databases.
type caddyProc struct {
	t      *testing.T
	dir    string
	admin  string // host:port of the admin API
	log    *logBuffer
	cmd    *exec.Cmd
	exited chan struct{}
}

// newCaddy prepares a Caddy for t; start runs it.
func newCaddy(t *testing.T) *caddyProc {
	t.Helper()
	if caddyBin == "" {
		t.Fatal("no Caddy binary: TestMain did not build ./cmd/caddy")
	}
	trackSources.Do(statModuleFiles)
	c := &caddyProc{
		t:     t,
		dir:   t.TempDir(),
		admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		log:   new(logBuffer),
	}
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("caddy output:\n%s", tail(c.log.String(), 16<<10))
		}
	})
	return c
}

// trackSources stats every file of the module once per run.
var trackSources sync.Once

// statModuleFiles lets `go test` cache this package's result only while the
// module's files stay as they are. The binary under test is built by a
// subprocess, which the test cache does not see; files a test opens or
// stats during the run are what it checks, so every file is stat'ed here.
func statModuleFiles() {
	_ = filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil
		case d.IsDir() && path != repoRoot && strings.HasPrefix(d.Name(), "."):
			return filepath.SkipDir
		case !d.IsDir():
			_, _ = os.Stat(path)
		}
		return nil
	})
}

// path returns name inside the test directory.
func (c *caddyProc) path(name string) string { return filepath.Join(c.dir, name) }

// env is the environment of every caddy command: data and config
// directories inside the test directory, never the user's own.
func (c *caddyProc) env() []string {
	return append(os.Environ(),
		"HOME="+c.path("home"),
		"XDG_DATA_HOME="+c.path("data"),
		"XDG_CONFIG_HOME="+c.path("config"),
	)
}

// caddyfile returns sites under the global options every test needs: the
// admin API on a free port, storage in the test directory, no HTTPS.
// globals adds more global options.
func (c *caddyProc) caddyfile(globals, sites string) string {
	return fmt.Sprintf("{\n\tadmin %s\n\tstorage file_system %s\n\tauto_https off\n\tpersist_config off\n%s}\n\n%s",
		c.admin, c.path("storage"), globals, sites)
}

// totpAuth returns a totp_auth block on the database db (a file name in the
// test directory) with the test key, user lines for users (all with
// testPassword) and extra setting lines.
func (c *caddyProc) totpAuth(db string, users []string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "totp_auth {\n\t\tdb_path %s\n\t\tencryption_key %s\n", c.path(db), testKey)
	for _, line := range extra {
		fmt.Fprintf(&b, "\t\t%s\n", line)
	}
	for _, u := range users {
		fmt.Fprintf(&b, "\t\tuser %s %s\n", u, testHash)
	}
	b.WriteString("\t}")
	return b.String()
}

// site returns a site block on 127.0.0.1:port with the given directives.
func site(port int, directives ...string) string {
	return fmt.Sprintf("http://127.0.0.1:%d {\n\tbind 127.0.0.1\n\t%s\n}\n", port, strings.Join(directives, "\n\t"))
}

// writeConfig writes caddyfile into the test directory and returns its path.
func (c *caddyProc) writeConfig(name, caddyfile string) string {
	c.t.Helper()
	p := c.path(name)
	if err := os.WriteFile(p, []byte(caddyfile), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// start runs `caddy run` on caddyfile and waits until the admin API and
// every port in ports answer.
func (c *caddyProc) start(caddyfile string, ports ...int) {
	c.t.Helper()
	if err := c.tryStart(caddyfile, ports...); err != nil {
		c.t.Fatal(err)
	}
}

// tryStart is start that returns the failure instead of ending the test.
func (c *caddyProc) tryStart(caddyfile string, ports ...int) error {
	c.t.Helper()
	cfg := c.writeConfig("Caddyfile", caddyfile)
	c.cmd = exec.Command(caddyBin, "run", "--config", cfg, "--adapter", "caddyfile")
	c.cmd.Env = c.env()
	c.cmd.Dir = c.dir // relative paths in a Caddyfile land in the test directory
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		return err
	}
	c.exited = make(chan struct{})
	go func() {
		_ = c.cmd.Wait()
		close(c.exited)
	}()

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("caddy exited before it was ready (%v)", c.cmd.ProcessState)
		default:
		}
		if c.ready(ports) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("caddy not ready after 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *caddyProc) ready(ports []int) bool {
	resp, err := http.Get("http://" + c.admin + "/config/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	for _, p := range ports {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
		if err != nil {
			return false
		}
		conn.Close()
	}
	return true
}

// stop ends the process, politely first. It is safe to call more than once.
func (c *caddyProc) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	c.cmd = nil
}

// waitExit waits for a process that should end on its own and reports
// whether it ended in time.
func (c *caddyProc) waitExit(d time.Duration) bool {
	select {
	case <-c.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// reload replaces the running configuration through the admin API, as
// `caddy reload` does, and reports how long Caddy took. After a reload
// that took (or found nothing to change), it waits for the previous
// configuration's servers to stop and drops the connections kept to them:
// a connection such a server accepted just before stopping ends without
// an answer, which a client sees as EOF, and is not tried again.
func (c *caddyProc) reload(caddyfile string) (status int, body string, took time.Duration) {
	c.t.Helper()
	settled := func() int { // reloads that stopped the old servers or changed nothing
		s := c.log.String()
		return strings.Count(s, "servers shutting down") + strings.Count(s, "config is unchanged")
	}
	before := settled()
	req, err := http.NewRequest(http.MethodPost, "http://"+c.admin+"/load", strings.NewReader(caddyfile))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	start := time.Now()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	took = time.Since(start)
	if err != nil {
		c.t.Fatalf("POST /load: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		deadline := time.Now().Add(5 * time.Second)
		for settled() == before {
			if time.Now().After(deadline) {
				c.t.Fatal("the reload did not stop the previous configuration's servers")
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	}
	return resp.StatusCode, string(b), took
}

// run runs a caddy subcommand (such as validate) to completion.
func (c *caddyProc) run(args ...string) (output string, err error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, args...)
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// upstream is the real backend behind Caddy: it answers every request with
// what it received, as JSON, and counts requests.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
}

// echo is what the upstream answers.
type echo struct {
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Headers map[string][]string `json:"headers"`
}

func newUpstream(t *testing.T) *upstream {
	u := new(upstream)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echo{Path: r.URL.Path, Query: r.URL.RawQuery, Headers: r.Header})
	}))
	t.Cleanup(u.Close)
	return u
}

// addr is the upstream's host:port, for reverse_proxy.
func (u *upstream) addr() string { return u.Listener.Addr().String() }

// client is a browser-like HTTP client for one site: it keeps cookies and
// does not follow redirects, so tests see every 302.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

func newClient(t *testing.T, port int) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{
		t:    t,
		base: fmt.Sprintf("http://127.0.0.1:%d", port),
		http: &http.Client{
			Jar:           jar,
			Timeout:       15 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// copyCookies returns a new client for the same site holding a copy of
// c's cookies, as a thief with a copied cookie would.
func (c *client) copyCookies() *client {
	other := newClient(c.t, 0)
	other.base = c.base
	u, _ := url.Parse(c.base)
	other.http.Jar.SetCookies(u, c.http.Jar.Cookies(u))
	return other
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic object, failing the test if it is
// not a JSON object.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v\n%s", r.status, err, r.body)
	}
	return m
}

// do sends a request. A non-nil body goes as JSON; header holds name/value
// pairs, set verbatim (so a test can send any spelling of a name).
func (c *client) do(method, path string, body any, header ...string) response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header[header[i]] = append(req.Header[header[i]], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// api sends a JSON API request to the gateway under prefix.
func (c *client) api(method, path string, body any) response {
	c.t.Helper()
	return c.do(method, prefix+"/"+path, body, "Accept", "application/json")
}

// expect fails the test unless r has the given status.
func expect(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d\n%s", what, r.status, status, r.body)
	}
}

// totp returns the code oathtool computes for secret at time at.
func totp(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	out, err := exec.Command("oathtool", "--totp", "-b", "-N", fmt.Sprintf("@%d", at.Unix()), secret).Output()
	if err != nil {
		t.Fatalf("oathtool (install it: `make test` does): %v", err)
	}
	return strings.TrimSpace(string(out))
}

// decodeQR reads the QR code in a data:image/png;base64 URL with zbarimg.
func decodeQR(t *testing.T, dataURL string) string {
	t.Helper()
	const scheme = "data:image/png;base64,"
	if !strings.HasPrefix(dataURL, scheme) {
		t.Fatalf("qr_png is not a %s URL: %.40q", scheme, dataURL)
	}
	png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(dataURL, scheme))
	if err != nil {
		t.Fatalf("qr_png: %v", err)
	}
	file := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(file, png, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("zbarimg", "--raw", "-q", file).Output()
	if err != nil {
		t.Fatalf("zbarimg (install zbar-tools: `make test` does): %v", err)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// enrollment is what the first sign-in of a user left behind.
type enrollment struct {
	secret string
	// codeTime is when the code that confirmed enrollment was computed;
	// its 30-second step is used up.
	codeTime time.Time
}

// enroll signs user in for the first time over the JSON API: password,
// TOTP enrollment confirmed with an oathtool code. Afterwards c holds a session.
func enroll(t *testing.T, c *client, user string) enrollment {
	t.Helper()
	r := c.api("POST", "login", map[string]string{"username": user, "password": testPassword})
	expect(t, "POST login", r, http.StatusOK)
	if got := r.json(t)["status"]; got != "enroll_required" {
		t.Fatalf("POST login: status %v, want enroll_required\n%s", got, r.body)
	}
	r = c.api("GET", "setup", nil)
	expect(t, "GET setup", r, http.StatusOK)
	secret, _ := r.json(t)["secret"].(string)
	if secret == "" {
		t.Fatalf("GET setup: no secret\n%s", r.body)
	}
	now := time.Now()
	r = c.api("POST", "setup", map[string]string{"code": totp(t, secret, now)})
	expect(t, "POST setup", r, http.StatusOK)
	return enrollment{secret: secret, codeTime: now}
}

// whoami returns the user the session of c belongs to, or "" with the status.
func whoami(t *testing.T, c *client) (string, int) {
	t.Helper()
	r := c.api("GET", "whoami", nil)
	if r.status != http.StatusOK {
		return "", r.status
	}
	user, _ := r.json(t)["user"].(string)
	return user, r.status
}

// upstreamEcho requests path through Caddy as an API client and returns
// what the upstream received, failing the test unless it got through.
func upstreamEcho(t *testing.T, c *client, path string, header ...string) echo {
	t.Helper()
	r := c.do("GET", path, nil, append([]string{"Accept", "application/json"}, header...)...)
	expect(t, "GET "+path+" through the gate", r, http.StatusOK)
	var e echo
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("upstream answer: %v\n%s", err, r.body)
	}
	return e
}

// identityHeaders returns every header the upstream received that a server
// could read as user_header (case-insensitive, '_' read as '-').
func identityHeaders(e echo, userHeader string) map[string][]string {
	want := strings.ReplaceAll(strings.ToLower(userHeader), "_", "-")
	found := make(map[string][]string)
	for name, vals := range e.Headers {
		if strings.ReplaceAll(strings.ToLower(name), "_", "-") == want {
			found[name] = vals
		}
	}
	return found
}
