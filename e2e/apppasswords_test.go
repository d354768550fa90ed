package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/webdav"

	"github.com/totp-auth/totp_auth/internal/pgtest"
)

// davUpstream is a WebDAV server behind Caddy that remembers what reached
// it of the identity: every Authorization header and every user header.
type davUpstream struct {
	*httptest.Server
	mu            sync.Mutex
	authorization []string
	users         map[string]bool
	ids           map[string]bool
}

func newDAVUpstream(t *testing.T) *davUpstream {
	u := &davUpstream{users: map[string]bool{}, ids: map[string]bool{}}
	dav := &webdav.Handler{Prefix: "/dav", FileSystem: webdav.NewMemFS(), LockSystem: webdav.NewMemLS()}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.authorization = append(u.authorization, r.Header.Values("Authorization")...)
		u.users[r.Header.Get("Remote-User")] = true
		u.ids[r.Header.Get("X-Auth-Id")] = true
		u.mu.Unlock()
		dav.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *davUpstream) addr() string { return u.Listener.Addr().String() }

// appPasswordSite is a site whose totp_auth block has app_passwords, in
// front of up, passing {http.auth.user.id} on as X-Auth-Id.
func appPasswordSite(port int, block, upstream string) string {
	return site(port, block, "reverse_proxy "+upstream+" {\n\t\theader_up X-Auth-Id {http.auth.user.id}\n\t}")
}

// newAppPassword makes an app password over the JSON API of a signed-in c.
func newAppPassword(t *testing.T, c *client, fields map[string]any) (id, value string) {
	t.Helper()
	body := map[string]any{"password": testPassword, "name": "Phone – DAVx5"}
	for k, v := range fields {
		body[k] = v
	}
	r := c.api("POST", "app-passwords", body)
	expect(t, "POST app-passwords", r, http.StatusOK)
	m := r.json(t)
	return m["id"].(string), m["app_password"].(string)
}

// curl runs curl with args and returns its output: the status code on the
// last line (-w), headers too when args ask for them.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code}"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestAppPasswords_CurlAndAWebDAVClientThroughCaddy(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("rclone"); err != nil {
		t.Fatal("rclone is not installed (`make test-deps` installs it)")
	}
	c := newCaddy(t)
	up := newDAVUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", appPasswordSite(port, c.totpAuth("totp.db", []string{"alice"}, `issuer "E2E Lab"`, "app_passwords"), up.addr())), port)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	// Without credentials a client is asked for them.
	out, err := exec.Command("curl", "-sS", "-o", "/dev/null", "-D", "-", base+"/dav/").CombinedOutput()
	if err != nil || !strings.Contains(string(out), " 401") || !strings.Contains(strings.ToLower(string(out)), `www-authenticate: basic realm="e2e lab"`) {
		t.Fatalf("no credentials: %v\n%s", err, out)
	}

	b := newClient(t, port)
	enroll(t, b, "alice")
	_, value := newAppPassword(t, b, map[string]any{"path_prefix": "/dav"})
	_, reader := newAppPassword(t, b, map[string]any{"name": "Backup check", "read_only": true})

	// curl -u: the user's own password never works, the app password does.
	if got := curl(t, "-u", "alice:"+testPassword, base+"/dav/"); got != "401" {
		t.Fatalf("curl with the user's own password: %s", got)
	}
	if got := curl(t, "-u", "alice:"+value, "-X", "PROPFIND", "-H", "Depth: 1", base+"/dav/"); got != "207" {
		t.Fatalf("curl PROPFIND with the app password: %s", got)
	}

	// A real WebDAV client: rclone puts, lists and reads back a file.
	obscured, err := exec.Command("rclone", "obscure", value).Output()
	if err != nil {
		t.Fatalf("rclone obscure: %v", err)
	}
	dir := t.TempDir()
	local := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(local, []byte("milk, eggs\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rclone.conf"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rclone := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "rclone", append(args, "--config", filepath.Join(dir, "rclone.conf"), "--low-level-retries", "1", "--retries", "1")...)
		cmd.Env = append(os.Environ(),
			"RCLONE_CONFIG_LAB_TYPE=webdav",
			"RCLONE_CONFIG_LAB_URL="+base+"/dav",
			"RCLONE_CONFIG_LAB_VENDOR=other",
			"RCLONE_CONFIG_LAB_USER=alice",
			"RCLONE_CONFIG_LAB_PASS="+strings.TrimSpace(string(obscured)))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rclone %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	rclone("copyto", local, "lab:lists/notes.txt")
	if got := rclone("lsf", "-R", "lab:"); !strings.Contains(got, "lists/notes.txt") {
		t.Fatalf("rclone lsf: %q", got)
	}
	if got := rclone("cat", "lab:lists/notes.txt"); got != "milk, eggs\n" {
		t.Fatalf("rclone cat: %q", got)
	}

	// Scope: whole segments on the cleaned path, and read-only methods.
	for target, want := range map[string]string{
		"/davsecret":     "403",
		"/dav/../secret": "403",
		"/dav/%2e%2e/x":  "403",
		"/dav%2f..%2fx":  "403",
		"//dav/x":        "403",
		"/dav/lists/":    "207",
	} {
		got := curl(t, "--path-as-is", "-u", "alice:"+value, "-X", "PROPFIND", "-H", "Accept: application/json", base+target)
		if got != want {
			t.Errorf("PROPFIND %s: %s, want %s", target, got, want)
		}
	}
	if got := curl(t, "-u", "alice:"+reader, base+"/dav/lists/notes.txt"); got != "200" {
		t.Errorf("GET with the read-only one: %s", got)
	}
	if got := curl(t, "-u", "alice:"+reader, "-T", local, base+"/dav/lists/other.txt"); got != "403" {
		t.Errorf("PUT with the read-only one: %s", got)
	}
	if got := curl(t, "-u", "alice:"+reader, "-H", "X-HTTP-Method-Override: DELETE", base+"/dav/lists/notes.txt"); got != "403" {
		t.Errorf("GET with a method override with the read-only one: %s", got)
	}

	// What reached the upstream: the user, and never a Basic header.
	up.mu.Lock()
	if len(up.authorization) != 0 {
		t.Errorf("the upstream received Authorization headers: %q", up.authorization)
	}
	if !up.users["alice"] || !up.ids["alice"] || len(up.users) != 1 {
		t.Errorf("the upstream saw users %v and ids %v, want only alice", up.users, up.ids)
	}
	up.mu.Unlock()

	// Wrong ones lock the user (the own password above was the first of
	// five); the right one is refused while the lock lasts.
	for i := 0; i < 4; i++ {
		if got := curl(t, "-u", "alice:abcd-efgh-jkmn-pqrs-tvwx", base+"/dav/"); got != "401" {
			t.Fatalf("wrong app password %d: %s", i, got)
		}
	}
	out, err = exec.Command("curl", "-sS", "-o", "/dev/null", "-D", "-", "-u", "alice:"+value, base+"/dav/").CombinedOutput()
	if err != nil || !strings.Contains(string(out), " 429") || !strings.Contains(strings.ToLower(string(out)), "retry-after: ") {
		t.Fatalf("right one while locked: %v\n%s", err, out)
	}
	if !strings.Contains(c.log.String(), `"event":"app_password","outcome":"failure"`) {
		t.Errorf("wrong app passwords were not audited:\n%s", tail(c.log.String(), 2000))
	}
	if strings.Contains(c.log.String(), value) || strings.Contains(c.log.String(), "abcd-efgh") {
		t.Errorf("an app password reached the log")
	}
}

// basicHeader is the Authorization value for user and value.
func basicHeader(user, value string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, value)
	return req.Header.Get("Authorization")
}

func TestPostgres_AppPasswordRevokedOnOneInstanceIsRefusedOnTheOtherWithinASecond(t *testing.T) {
	t.Parallel()
	c := newCluster(t, pgtest.Database(t), []string{"frank"}, "app_passwords")
	onA := newClient(t, c.aPort)
	enroll(t, onA, "frank")
	id, value := newAppPassword(t, onA, nil)
	phone := newClient(t, c.bPort) // a sync client, sent to the other instance
	use := func() int {
		return phone.do("GET", "/calendar", nil, "Authorization", basicHeader("frank", value), "Accept", "application/json").status
	}
	if s := use(); s != http.StatusOK {
		t.Fatalf("app password on the other instance: %d", s)
	}
	expect(t, "revoke", onA.api("POST", "app-passwords/revoke", map[string]string{"id": id}), http.StatusOK)
	start := time.Now()
	for {
		s := use()
		if s == http.StatusUnauthorized {
			break
		}
		if s != http.StatusOK {
			t.Fatalf("status %d while waiting for 401", s)
		}
		if time.Since(start) > time.Second {
			t.Fatal("a revoked app password still passes on the other instance after a second")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("the revocation reached the other instance in %s", time.Since(start))
}

func TestAppPasswords_CLIListsAndRevokesThroughTheRunningCaddyAndDirectly(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	cfg := c.writeConfig("Caddyfile", c.caddyfile("", appPasswordSite(port, c.totpAuth("totp.db", []string{"alice"}, "app_passwords"), up.addr())))
	c.start(readFile(t, cfg), port)
	b := newClient(t, port)
	enroll(t, b, "alice")
	id, value := newAppPassword(t, b, map[string]any{"path_prefix": "/dav", "read_only": true})
	other, otherValue := newAppPassword(t, b, map[string]any{"name": "Laptop – rclone"})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if got := curl(t, "-u", "alice:"+value, base+"/dav/"); got != "200" {
		t.Fatalf("app password before revoking: %s", got)
	}

	out, err := c.cli("", nil, "user", "app-passwords", "alice")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "Phone – DAVx5") || !strings.Contains(out, "read-only, /dav") ||
		!strings.Contains(out, other) || strings.Contains(out, value) {
		t.Fatalf("user app-passwords: %v\n%s", err, out)
	}
	out, err = c.cli("", nil, "user", "revoke-app-password", "alice", id)
	if err != nil || !strings.Contains(out, "Revoked app password "+id) {
		t.Fatalf("user revoke-app-password: %v\n%s", err, out)
	}
	if got := curl(t, "-u", "alice:"+value, base+"/dav/"); got != "401" {
		t.Errorf("revoked app password: %s", got)
	}
	if out, err := c.cli("", nil, "user", "revoke-app-password", "alice", id); err == nil || !strings.Contains(out, "has no app password") {
		t.Errorf("revoking it again: %v\n%s", err, out)
	}

	// With Caddy stopped, the commands open the database themselves.
	c.stop()
	out, err = c.cli("", nil, "user", "revoke-app-password", "alice", other, "--config", cfg)
	if err != nil || !strings.Contains(out, "Revoked app password "+other) {
		t.Fatalf("user revoke-app-password with Caddy stopped: %v\n%s", err, out)
	}
	out, err = c.cli("", nil, "user", "app-passwords", "alice", "--config", cfg)
	if err != nil || !strings.Contains(out, "alice has no app passwords") {
		t.Fatalf("user app-passwords with Caddy stopped: %v\n%s", err, out)
	}
	c.start(readFile(t, cfg), port)
	if got := curl(t, "-u", "alice:"+otherValue, base+"/"); got != "401" {
		t.Errorf("app password revoked while Caddy was stopped: %s", got)
	}
}

// docBlocks returns the fenced code blocks of a docs page whose info
// string is lang, in order.
func docBlocks(t *testing.T, page, lang string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	parts := strings.Split(string(b), "```"+lang+"\n")
	for _, p := range parts[1:] {
		end := strings.Index(p, "```")
		if end < 0 {
			t.Fatalf("docs/%s: a %s block is not closed", page, lang)
		}
		blocks = append(blocks, p[:end])
	}
	return blocks
}

// TestDocs_AppPasswordsSnippetsRunAsWritten runs the Caddyfile and every
// shell snippet of docs/app-passwords.md, with only the site's address
// and the upstream replaced by the test's own, and the database and the
// user added to the block.
func TestDocs_AppPasswordsSnippetsRunAsWritten(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newDAVUpstream(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	caddyfiles := docBlocks(t, "app-passwords.md", "caddyfile")
	if len(caddyfiles) != 1 {
		t.Fatalf("docs/app-passwords.md has %d Caddyfile blocks, want 1", len(caddyfiles))
	}
	site := strings.NewReplacer(
		"cloud.example.com {", base+" {\n\tbind 127.0.0.1",
		"127.0.0.1:8080", up.addr(),
		"\ttotp_auth {\n", fmt.Sprintf("\ttotp_auth {\n\t\tdb_path %s\n\t\tencryption_key %s\n\t\tuser alice %s\n", c.path("totp.db"), testKey, testHash),
	).Replace(caddyfiles[0])
	c.start(c.caddyfile("", site), port)
	b := newClient(t, port)
	enroll(t, b, "alice")
	_, value := newAppPassword(t, b, map[string]any{"path_prefix": "/dav"})

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("buy milk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "photos"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "photos", "beach.jpg"), []byte("not really a jpeg"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := "set -euo pipefail\n" + strings.ReplaceAll(strings.Join(docBlocks(t, "app-passwords.md", "sh"), "\n"), "https://cloud.example.com", base)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RCLONE_CONFIG="+filepath.Join(dir, "rclone.conf"), "HOME="+dir)
	cmd.Stdin = strings.NewReader(value + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the snippets of docs/app-passwords.md failed: %v\n%s", err, out)
	}
	for _, want := range []string{"buy milk", "beach.jpg"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the snippets' output lacks %q:\n%s", want, out)
		}
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.authorization) != 0 {
		t.Errorf("the upstream received Authorization headers: %q", up.authorization)
	}
}
