package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
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

// TestExample_DemoUserReachesTheDemoUpstream runs Caddyfile.example as it
// is, apart from its ports and the admin address, and signs in as the demo
// user the README names.
func TestExample_DemoUserReachesTheDemoUpstream(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	example, err := os.ReadFile(filepath.Join(repoRoot, "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	port, upstreamPort := freePort(t), freePort(t)
	cfg := strings.NewReplacer(
		":8080", fmt.Sprintf(":%d", port),
		":8081", fmt.Sprintf(":%d", upstreamPort),
		"\tauto_https off\n", fmt.Sprintf("\tauto_https off\n\tadmin %s\n\tstorage file_system %s\n\tpersist_config off\n", c.admin, c.path("storage")),
	).Replace(string(example))
	if !strings.Contains(cfg, c.admin) {
		t.Fatal("could not add the admin address to the example's global options")
	}
	c.start(cfg, port, upstreamPort)

	// The database and its key go to Caddy's data directory by default.
	if _, err := os.Stat(filepath.Join(c.path("data"), "caddy", "totp_auth", "totp.db.key")); err != nil {
		t.Errorf("no generated key file in the default place: %v", err)
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
	expect(t, "POST setup", b.api("POST", "setup", map[string]string{"code": totp(t, secret, time.Now())}), http.StatusOK)

	r = b.do("GET", "/hello", nil, "Accept", "text/html")
	expect(t, "GET /hello after sign-in", r, http.StatusOK)
	for _, want := range []string{"Hello, demo!", "<code>/hello</code>"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("demo page lacks %q:\n%s", want, r.body)
		}
	}
}
