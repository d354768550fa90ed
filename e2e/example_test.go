package e2e_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExample_XcaddyJSONIsWhatCaddyAdaptProduces(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	out, err := c.run("adapt", "--config", filepath.Join(repoRoot, "Caddyfile.example"), "--adapter", "caddyfile")
	if err != nil {
		t.Fatalf("caddy adapt Caddyfile.example: %v\n%s", err, out)
	}
	// adapt may print log lines (such as formatting hints) after the JSON.
	var adapted any
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&adapted); err != nil {
		t.Fatalf("caddy adapt output is not JSON: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "xcaddy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var committed any
	if err := json.Unmarshal(b, &committed); err != nil {
		t.Fatalf("xcaddy.json: %v", err)
	}
	if !reflect.DeepEqual(adapted, committed) {
		t.Errorf("xcaddy.json differs from `caddy adapt --config Caddyfile.example`; regenerate it with\n"+
			"  go run ./cmd/caddy adapt --config Caddyfile.example --pretty > xcaddy.json\nadapted:\n%s", out)
	}
}

// exampleAdmin is the admin address Caddyfile.example sets.
const exampleAdmin = "localhost:2099"

// demoConfig returns Caddyfile.example as it is, apart from its ports and
// its admin address, which become c's.
func demoConfig(t *testing.T, c *caddyProc, port, upstreamPort int) string {
	t.Helper()
	example, err := os.ReadFile(filepath.Join(repoRoot, "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(example), "\tadmin "+exampleAdmin+"\n") {
		t.Fatalf("Caddyfile.example does not set its own admin address %s (the default localhost:2019 would collide with an installed Caddy)", exampleAdmin)
	}
	return strings.NewReplacer(
		":8080", fmt.Sprintf(":%d", port),
		":8081", fmt.Sprintf(":%d", upstreamPort),
		exampleAdmin, c.admin,
	).Replace(string(example))
}

// TestExample_DemoUserReachesTheDemoUpstream runs Caddyfile.example as it
// is, apart from its ports and the admin address, from a directory that
// stands for the checkout, and signs in as the demo user the README names.
// Everything the demo keeps lands in .demo/ there, none of it in Caddy's
// data or configuration directory, and a second run continues where the
// first ended.
func TestExample_DemoUserReachesTheDemoUpstream(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port, upstreamPort := freePort(t), freePort(t)
	cfg := demoConfig(t, c, port, upstreamPort)
	c.start(cfg, port, upstreamPort)

	for _, f := range []string{"totp.db", "totp.db.key"} {
		if _, err := os.Stat(filepath.Join(c.dir, ".demo", f)); err != nil {
			t.Errorf("the demo keeps no %s in .demo/ of the directory it runs in: %v", f, err)
		}
	}
	b := newClient(t, port)
	b.base = fmt.Sprintf("http://localhost:%d", port) // the example's site is localhost
	if r := b.do("GET", "/", nil, "Accept", "text/html"); r.status != http.StatusFound {
		t.Fatalf("GET / as a browser: status %d, want 302 to the login page", r.status)
	}
	r := b.api("POST", "login", map[string]string{"username": "demo", "password": "demo-password"})
	expect(t, "POST login as demo", r, http.StatusOK)
	r = b.api("GET", "setup", nil)
	expect(t, "GET setup", r, http.StatusOK)
	secret, _ := r.json(t)["secret"].(string)
	app := &authenticator{t: t, secret: secret}
	r = b.api("POST", "setup", map[string]string{"code": app.code()})
	expect(t, "POST setup", r, http.StatusOK)
	var codes []string
	for _, c := range r.json(t)["backup_codes"].([]any) {
		codes = append(codes, c.(string))
	}

	r = b.do("GET", "/hello", nil, "Accept", "text/html")
	expect(t, "GET /hello after sign-in", r, http.StatusOK)
	// A page for phones and dark mode, saying truthfully how the user
	// signed in.
	for _, want := range []string{"Hello, demo!", "<code>/hello</code>", `<meta name="viewport" content="width=device-width,initial-scale=1">`,
		`<meta name="color-scheme" content="light dark">`, "signed in with\nyour password and a code from your authenticator app."} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("demo page lacks %q:\n%s", want, r.body)
		}
	}

	// Caddy's own storage goes there too, once its first cleaning ran.
	storage := filepath.Join(c.dir, ".demo", "caddy")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(storage); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Errorf("Caddy's storage is not in .demo/caddy: %v", err)
			break
		}
	}

	// Caddy may note its instance id in its data directory, as every run
	// of Caddy does; nothing of the demo goes there or to its config
	// directory.
	for _, dir := range []string{c.path("data"), c.path("config")} {
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() != "instance.uuid" {
				t.Errorf("the demo wrote %s outside its .demo/ folder", path)
			}
			return nil
		})
	}
	if out, err := exec.Command("git", "-C", repoRoot, "check-ignore", "-q", ".demo/totp.db").CombinedOutput(); err != nil {
		t.Errorf("git does not ignore .demo/ in the checkout (%v %s): a demo database could be committed", err, out)
	}

	// A second run: the demo user is still enrolled and signs in with a code.
	c.stop()
	c.start(cfg, port, upstreamPort)
	b = newClient(t, port)
	b.base = fmt.Sprintf("http://localhost:%d", port)
	r = b.api("POST", "login", map[string]string{"username": "demo", "password": "demo-password"})
	expect(t, "POST login as demo after a restart", r, http.StatusOK)
	if got := r.json(t)["status"]; got != "2fa_required" {
		t.Fatalf("after a restart the demo user gets %v, want 2fa_required: the second run did not continue the first", got)
	}
	expect(t, "POST 2fa after a restart", b.api("POST", "2fa", map[string]string{"code": app.code()}), http.StatusOK)
	expect(t, "GET /hello after a restart", b.do("GET", "/hello", nil, "Accept", "text/html"), http.StatusOK)

	// A sign-in with a backup code says so, not that it was a TOTP code.
	b = newClient(t, port)
	b.base = fmt.Sprintf("http://localhost:%d", port)
	expect(t, "POST login as demo again", b.api("POST", "login", map[string]string{"username": "demo", "password": "demo-password"}), http.StatusOK)
	expect(t, "POST 2fa with a backup code", b.api("POST", "2fa", map[string]string{"code": codes[0]}), http.StatusOK)
	expect(t, "POST backup-codes", b.api("POST", "backup-codes", map[string]string{}), http.StatusOK)
	r = b.do("GET", "/hello", nil, "Accept", "text/html")
	expect(t, "GET /hello after a backup code", r, http.StatusOK)
	if body := string(r.body); !strings.Contains(body, "signed in with\nyour password and a backup code.") || strings.Contains(body, "authenticator app") {
		t.Errorf("after a backup code the demo page says:\n%s", body)
	}
}
