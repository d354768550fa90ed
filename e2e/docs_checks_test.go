package e2e_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/internal/pgtest"
)

// docChecks run the documentation's snippets; see docs_test.go.
var docChecks = []docCheck{
	{"the demo", []string{"demo"}, checkDemo},
	{"building caddy", []string{"build"}, checkBuild},
	{"use it in your Caddy", []string{"use-it"}, checkUseIt},
	{"the quick start and its backups", []string{"quick-start", "user-add", "upgrade-backup", "backup-as-root"}, checkQuickStart},
	{"a tls internal site", []string{"quick-start-internal"}, checkQuickStartInternal},
	{"a health check left open", []string{"health-check"}, checkHealthCheck},
	{"access policies", []string{"access-policies"}, checkAccessPolicies},
	{"the portal behind Caddy and nginx", []string{"portal", "portal-user-add", "portal-app-caddy", "portal-nginx"}, checkPortal},
	{"a tls internal portal", []string{"portal-internal", "portal-internal-app"}, checkPortalInternal},
	{"two instances on PostgreSQL behind a balancer", []string{"postgres-database", "postgres-env", "postgres-site", "lb-node", "lb-balancer", "postgres-cli"}, checkInstances},
	{"migrating to PostgreSQL", []string{"postgres-migrate"}, checkMigrate},
	{"sessions and remembered devices", []string{"sessions-site", "sessions-list", "sessions-signout"}, checkSessions},
}

func init() { docChecks = append(docChecks, passkeyDocChecks...) }

// oneHost is a lab with one host, server, at 10.0.0.1 under names.
func oneHost(t *testing.T, names ...string) (*lab, *labHost) {
	l := newLab(t)
	h := l.host("server", "10.0.0.1", names...)
	l.start()
	h.installShims()
	return l, h
}

// siteHost starts a lab host running caddyfile from /etc/caddy/Caddyfile
// as the Debian package would, with a recorder on each upstream address.
func siteHost(t *testing.T, caddyfile string, names []string, upstreams ...string) (*lab, *labHost, map[string]*recorder) {
	t.Helper()
	l, h := oneHost(t, names...)
	recs := map[string]*recorder{}
	for _, u := range upstreams {
		recs[u] = h.upstream(u)
	}
	h.write("/etc/caddy/Caddyfile", withLabGlobals(caddyfile), 0o644)
	h.caddyService("127.0.0.1:443")
	h.waitHTTPS(names...)
	return l, h, recs
}

// userAddCommand is the README's user add snippet, for checks that need
// users but run another snippet.
func userAddCommand(t *testing.T) docSnippet { return docSnippetNamed(t, "user-add") }

func checkDemo(t *testing.T, s map[string]docSnippet) {
	cmd := strings.TrimSpace(s["demo"].text)
	if cmd != "go run ./cmd/caddy run --config Caddyfile.example" {
		t.Fatalf("the demo command changed to %q: teach this check to run it", cmd)
	}
	l, h := oneHost(t)
	checkout := filepath.Join(l.dir, "checkout")
	example, err := os.ReadFile(filepath.Join(repoRoot, "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(checkout, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(checkout, "Caddyfile.example"), example, 0o644); err != nil {
		t.Fatal(err)
	}
	p := h.serve("demo", "", nil, []string{"sh", "-c", "cd " + checkout + " && exec " + strings.Replace(cmd, "go run ./cmd/caddy", "caddy", 1)}, "127.0.0.1:8080", "127.0.0.1:8081")
	b := l.browser(map[string]*labHost{"localhost": h})
	c := b.at("http://localhost:8080")
	r := c.do("GET", "/", nil, "Accept", "text/html")
	if r.status != http.StatusFound || !strings.Contains(r.header.Get("Location"), prefix+"/login") {
		t.Fatalf("http://localhost:8080 answered %d, Location %q: want the login page", r.status, r.header.Get("Location"))
	}
	r = c.api("POST", "login", map[string]string{"username": "demo", "password": "demo-password"})
	expect(t, "sign in as demo with demo-password", r, http.StatusOK)
	r = c.api("GET", "setup", nil)
	expect(t, "GET setup", r, http.StatusOK)
	secret, _ := r.json(t)["secret"].(string)
	expect(t, "POST setup", c.api("POST", "setup", map[string]string{"code": totp(t, secret, time.Now())}), http.StatusOK)
	r = c.do("GET", "/", nil, "Accept", "text/html")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "Hello, demo!") {
		t.Fatalf("the demo upstream after sign-in: %d\n%s", r.status, r.body)
	}
	if _, err := os.Stat(filepath.Join(checkout, ".demo", "totp.db")); err != nil {
		t.Errorf("the demo keeps no database in .demo/ of the checkout: %v", err)
	}
	p.stop()
}

func checkBuild(t *testing.T, s map[string]docSnippet) {
	text := s["build"].text
	if !strings.HasPrefix(text, "go build -o caddy ./cmd/caddy\n") {
		t.Fatalf("the build snippet no longer starts with go build -o caddy ./cmd/caddy:\n%s", text)
	}
	l, h := oneHost(t)
	dir := filepath.Join(l.dir, "checkout")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	text = strings.Replace(text, "go build -o caddy ./cmd/caddy", "cp /usr/local/bin/caddy ./caddy", 1)
	out := snippetShell(t, h, docSnippet{name: "build", file: s["build"].file, line: s["build"].line, text: text}, dir, "")
	for _, want := range []string{"v2.", "totp-auth", "user"} {
		if !strings.Contains(out, want) {
			t.Errorf("./caddy version and ./caddy totp-auth --help print no %q:\n%s", want, out)
		}
	}
}

func checkUseIt(t *testing.T, s map[string]docSnippet) {
	l, h, recs := siteHost(t, s["use-it"].text, []string{"app.home.lab"}, "127.0.0.1:8080")
	addUser(t, h, userAddCommand(t), "alice")
	c := l.browser(map[string]*labHost{"app.home.lab": h}).at("https://app.home.lab")
	signInFirst(t, c, "alice")
	wantUser(t, upstreamGot(t, c, "/", "Remote-User", "root"), "alice", true)
	if recs["127.0.0.1:8080"].count() != 1 {
		t.Errorf("the upstream got %d requests, want 1", recs["127.0.0.1:8080"].count())
	}
}

func checkQuickStart(t *testing.T, s map[string]docSnippet) {
	l, h, recs := siteHost(t, s["quick-start"].text, []string{"grafana.example.com"}, "127.0.0.1:3000")
	addUser(t, h, s["user-add"], "alice")
	c := l.browser(map[string]*labHost{"grafana.example.com": h}).at("https://grafana.example.com")
	r := c.do("GET", "/", nil, "Accept", "text/html")
	if r.status != http.StatusFound {
		t.Fatalf("https://grafana.example.com/ before sign-in: %d, want 302 to the login page", r.status)
	}
	signInFirst(t, c, "alice")
	wantUser(t, upstreamGot(t, c, "/"), "alice", true)
	if recs["127.0.0.1:3000"].count() != 1 {
		t.Errorf("Grafana got %d requests, want 1", recs["127.0.0.1:3000"].count())
	}

	// The README's promise about where the database lives and who owns it.
	for _, f := range []string{"totp.db", "totp.db.key"} {
		st, err := os.Stat(h.path("/var/lib/caddy/.local/share/caddy/totp_auth/" + f))
		if err != nil {
			t.Fatalf("no %s where the README says: %v", f, err)
		}
		if sys := st.Sys().(*syscall.Stat_t); sys.Uid != labUID || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: owner %d, mode %o; the README says caddy, 0600", f, sys.Uid, st.Mode().Perm())
		}
	}

	snippetShell(t, h, s["upgrade-backup"], "/", "")
	backup := h.path("/var/lib/caddy/totp-before-upgrade.db")
	if st, err := os.Stat(backup); err != nil || st.Size() == 0 {
		t.Errorf("the upgrade's backup is not where it says: %v", err)
	} else if st.Sys().(*syscall.Stat_t).Uid != labUID {
		t.Errorf("the upgrade's backup is not the caddy user's")
	}

	snippetShell(t, h, s["backup-as-root"], "/", "")
	dated := h.path("/var/backups/totp-" + time.Now().UTC().Format("2006-01-02") + ".db")
	if time.Now().Format("2006-01-02") != time.Now().UTC().Format("2006-01-02") {
		dated = h.path("/var/backups/totp-" + time.Now().Format("2006-01-02") + ".db")
	}
	b, err := os.ReadFile(dated)
	if err != nil || len(b) < 4096 {
		t.Fatalf("backup - > /var/backups/...: %v (%d bytes)", err, len(b))
	}
	// A bbolt file starts with its meta page: magic 0xED0CDAED at offset 16.
	if fmt.Sprintf("%x", b[16:20]) != "edda0ced" {
		t.Errorf("the backup written to standard output is not a bbolt file")
	}
}

func checkQuickStartInternal(t *testing.T, s map[string]docSnippet) {
	l, h, _ := siteHost(t, s["quick-start-internal"].text, []string{"grafana.lab.home.arpa"}, "127.0.0.1:3000")
	// Trust exactly the root the README tells users to install.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(h.read("/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"))) {
		t.Fatal("no root certificate where the README says")
	}
	b := l.browser(map[string]*labHost{"grafana.lab.home.arpa": h})
	b.http.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	r := b.at("https://grafana.lab.home.arpa").do("GET", "/", nil, "Accept", "text/html")
	if r.status != http.StatusFound || !strings.Contains(r.header.Get("Location"), prefix+"/login") {
		t.Fatalf("https://grafana.lab.home.arpa/: %d %q, want the login page", r.status, r.header.Get("Location"))
	}
}

func checkHealthCheck(t *testing.T, s map[string]docSnippet) {
	l, _, recs := siteHost(t, s["health-check"].text, []string{"grafana.example.com"}, "127.0.0.1:3000")
	c := l.browser(map[string]*labHost{"grafana.example.com": l.hosts["server"]}).at("https://grafana.example.com")
	got := upstreamGot(t, c, "/api/health", "Remote-User", "admin")
	if len(identity(got, "Remote-User")) != 0 {
		t.Errorf("the open health check passed on the client's Remote-User: %v", identity(got, "Remote-User"))
	}
	r := c.do("GET", "/api/dashboards", nil, "Accept", "application/json")
	if r.status != http.StatusUnauthorized || recs["127.0.0.1:3000"].count() != 1 {
		t.Errorf("another path without a session: %d, %d requests upstream; want 401 and only the health check", r.status, recs["127.0.0.1:3000"].count())
	}
}

func checkAccessPolicies(t *testing.T, s map[string]docSnippet) {
	l := newLab(t)
	h := l.host("server", "10.0.0.1", "wiki.home.lab", "router.home.lab")
	router := l.host("router", "192.168.1.1")
	l.start()
	h.installShims()
	recs := map[string]*recorder{"127.0.0.1:8081": h.upstream("127.0.0.1:8081"), "192.168.1.1:80": router.upstream("192.168.1.1:80")}
	h.write("/etc/caddy/Caddyfile", withLabGlobals(s["access-policies"].text), 0o644)
	h.caddyService("127.0.0.1:443")
	h.waitHTTPS("wiki.home.lab", "router.home.lab")
	for _, u := range []string{"alice", "bob"} {
		addUser(t, h, userAddCommand(t), u)
	}
	route := map[string]*labHost{"wiki.home.lab": h, "router.home.lab": h}
	alice := l.browser(route)
	aliceSecret := signInFirst(t, alice.at("https://wiki.home.lab"), "alice")
	wantUser(t, upstreamGot(t, alice.at("https://wiki.home.lab"), "/"), "alice", true)
	signInAgain(t, alice.at("https://router.home.lab"), "alice", aliceSecret)
	wantUser(t, upstreamGot(t, alice.at("https://router.home.lab"), "/"), "alice", true)

	bob := l.browser(route)
	secret := signInFirst(t, bob.at("https://wiki.home.lab"), "bob")
	wantUser(t, upstreamGot(t, bob.at("https://wiki.home.lab"), "/"), "bob", true)
	// Signed in at the router too, bob, in family, may not pass there.
	c := bob.at("https://router.home.lab")
	signInAgain(t, c, "bob", secret)
	if r := c.do("GET", "/", nil, "Accept", "application/json"); r.status != http.StatusForbidden {
		t.Errorf("bob at the router: %d, want 403", r.status)
	}
	if recs["192.168.1.1:80"].count() != 1 {
		t.Errorf("the router got %d requests, want alice's one", recs["192.168.1.1:80"].count())
	}
}

func checkPortal(t *testing.T, s map[string]docSnippet) {
	l := newLab(t)
	auth := l.host("auth", "10.0.0.1", "auth.example.com")
	apps := l.host("apps", "10.0.0.2", "app.example.com", "wiki.example.com")
	ngx := l.host("nginx", "10.0.0.3")
	l.start()
	for _, h := range []*labHost{auth, apps, ngx} {
		h.installShims()
	}
	auth.write("/etc/caddy/Caddyfile", withLabGlobals(s["portal"].text), 0o644)
	auth.caddyService("127.0.0.1:443")
	auth.waitHTTPS("auth.example.com")
	for _, u := range []string{"alice", "bob", "carol"} {
		addUser(t, auth, s["portal-user-add"], u)
	}
	if got := strings.TrimSpace(auth.mustRun("stat", "-c", "%a %U", "/run/caddy/admin.sock")); got != "600 caddy" {
		t.Errorf("the admin socket is %q, want mode 600, owner caddy", got)
	}

	appUp, wikiUp := apps.upstream("127.0.0.1:3000"), apps.upstream("127.0.0.1:3001")
	apps.write("/etc/caddy/Caddyfile", withLabGlobals(s["portal-app-caddy"].text), 0o644)
	apps.caddyService("127.0.0.1:443")
	apps.waitHTTPS("app.example.com", "wiki.example.com")

	cert, key := l.ca.issue(t, "app.example.com")
	ngx.write("/etc/ssl/certs/app.example.com.pem", cert, 0o644)
	ngx.write("/etc/ssl/private/app.example.com.key", key, 0o600)
	ngx.write("/etc/nginx/sites-enabled/app.example.com", s["portal-nginx"].text, 0o644)
	ngx.mustRun("rm", "-f", "/etc/nginx/sites-enabled/default")
	ngxUp := ngx.upstream("127.0.0.1:3000")
	ngx.serve("nginx", "", nil, []string{"nginx", "-g", "daemon off;"}, "127.0.0.1:443")

	viaCaddy := map[string]*labHost{"auth.example.com": auth, "app.example.com": apps, "wiki.example.com": apps}
	alice := l.browser(viaCaddy)
	r := alice.at("https://app.example.com").do("GET", "/x?y=1", nil, "Accept", "text/html")
	wantLogin := "https://auth.example.com" + prefix + "/login?redirect=https%3A%2F%2Fapp.example.com%2Fx%3Fy%3D1"
	if r.status != http.StatusFound || r.header.Get("Location") != wantLogin {
		t.Fatalf("app.example.com before sign-in: %d %q, want 302 to %s", r.status, r.header.Get("Location"), wantLogin)
	}
	signInFirst(t, alice.at("https://auth.example.com"), "alice")
	wantUser(t, upstreamGot(t, alice.at("https://app.example.com"), "/x", "Cookie", "theme=dark"), "alice", true)
	got := upstreamGot(t, alice.at("https://wiki.example.com"), "/", "Cookie", "theme=dark")
	wantUser(t, got, "alice", true)
	if c := got.Headers["Cookie"]; len(c) != 1 || !strings.Contains(c[0], "theme=dark") {
		t.Errorf("the app lost its own cookie: %q", c)
	}
	if appUp.count() != 1 || wikiUp.count() != 1 {
		t.Errorf("app and wiki got %d and %d requests, want 1 each", appUp.count(), wikiUp.count())
	}

	bob := l.browser(viaCaddy)
	signInFirst(t, bob.at("https://auth.example.com"), "bob")
	wantUser(t, upstreamGot(t, bob.at("https://app.example.com"), "/"), "bob", true)
	if r := bob.at("https://wiki.example.com").do("GET", "/", nil, "Accept", "application/json"); r.status != http.StatusForbidden {
		t.Errorf("bob, not in admins, at the wiki: %d, want 403", r.status)
	}

	// The portal's catch-all: another host name, another path.
	portal := alice.at("https://auth.example.com")
	if r := portal.do("GET", "/", nil, "Accept", "text/html"); r.status != http.StatusFound || r.header.Get("Location") != prefix+"/account" {
		t.Errorf("the portal's root, signed in: %d %q, want the account page", r.status, r.header.Get("Location"))
	}
	if r := portal.do("GET", "/verify", nil, "Accept", "application/json"); r.status != http.StatusNotFound {
		t.Errorf("a path outside the prefix, signed in: %d, want 404", r.status)
	}
	req, _ := http.NewRequest("GET", "https://auth.example.com"+prefix+"/verify", nil)
	req.Host = "10.0.0.1"
	if resp, err := alice.http.Do(req); err != nil {
		t.Errorf("a request for another host name: %v", err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("a request for another host name: %d, want 421", resp.StatusCode)
	}

	// nginx: sends SNI, and keeps the session cookie from the app.
	carol := l.browser(map[string]*labHost{"auth.example.com": auth, "app.example.com": ngx})
	r = carol.at("https://app.example.com").do("GET", "/notes", nil, "Accept", "text/html")
	if r.status != http.StatusFound || r.header.Get("Location") != "https://auth.example.com"+prefix+"/login?redirect=https%3A%2F%2Fapp.example.com%2Fnotes" {
		t.Fatalf("nginx before sign-in: %d %q, want 302 to the portal's login page\n%s", r.status, r.header.Get("Location"), r.body)
	}
	signInFirst(t, carol.at("https://auth.example.com"), "carol")
	wantUser(t, upstreamGot(t, carol.at("https://app.example.com"), "/notes", "Cookie", "theme=dark", "Remote-User", "root"), "carol", true)
	if ngxUp.count() != 1 {
		t.Errorf("the app behind nginx got %d requests, want 1", ngxUp.count())
	}
}

func checkPortalInternal(t *testing.T, s map[string]docSnippet) {
	l := newLab(t)
	auth := l.host("auth", "10.0.0.1", "auth.lab.home.arpa")
	apps := l.host("apps", "10.0.0.2", "app.lab.home.arpa")
	apps.trustCA = false // only what the snippet configures trusts the portal
	l.start()
	auth.installShims()
	auth.write("/etc/caddy/Caddyfile", withLabGlobals(s["portal-internal"].text), 0o644)
	auth.caddyService("127.0.0.1:443")
	auth.waitHTTPS("auth.lab.home.arpa")
	addUser(t, auth, userAddCommand(t), "alice")
	// As the page says: the portal's root, copied to the app's host.
	apps.write("/etc/caddy/portal-root.crt", auth.read("/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"), 0o644)
	up := apps.upstream("127.0.0.1:3000")
	apps.write("/etc/caddy/Caddyfile", withLabGlobals(s["portal-internal-app"].text), 0o644)
	apps.caddyService("127.0.0.1:443")
	apps.waitHTTPS("app.lab.home.arpa")

	b := l.browser(map[string]*labHost{"auth.lab.home.arpa": auth, "app.lab.home.arpa": apps})
	r := b.at("https://app.lab.home.arpa").do("GET", "/", nil, "Accept", "text/html")
	if r.status != http.StatusFound || !strings.HasPrefix(r.header.Get("Location"), "https://auth.lab.home.arpa"+prefix+"/login") {
		t.Fatalf("the app before sign-in: %d %q, want the portal's login page\n%s", r.status, r.header.Get("Location"), r.body)
	}
	signInFirst(t, b.at("https://auth.lab.home.arpa"), "alice")
	wantUser(t, upstreamGot(t, b.at("https://app.lab.home.arpa"), "/"), "alice", true)
	if up.count() != 1 {
		t.Errorf("the app got %d requests, want 1", up.count())
	}
}

// forwardPostgres makes the cluster of dsn reachable at addr on host h,
// as db.internal:5432 is in the examples.
func forwardPostgres(t *testing.T, h *labHost, addr, dsn string) {
	t.Helper()
	var dir string
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "host="); ok {
			dir = v
		}
	}
	socket := filepath.Join(dir, ".s.PGSQL.5432")
	l := h.listen(addr)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var s net.Conn
				var err error
				for try := 0; try < 30; try++ {
					if s, err = net.Dial("unix", socket); err == nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err != nil {
					t.Logf("db.internal: %v", err)
					return
				}
				defer s.Close()
				go func() { _, _ = io.Copy(s, c); s.Close() }()
				_, _ = io.Copy(c, s)
			}()
		}
	}()
}

// docsPostgres starts a cluster and runs the page's SQL on it as its
// superuser; it returns the superuser's connection string.
func docsPostgres(t *testing.T, sqlText string) string {
	t.Helper()
	pgServer, _ := pgtest.Own(t)
	super := pgServer.DSN("postgres")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("PostgreSQL's log:\n%s", tail(pgServer.Log(), 8<<10))
		}
	})
	sql := filepath.Join(t.TempDir(), "database.sql")
	if err := os.WriteFile(sql, []byte(sqlText), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("psql", super, "-v", "ON_ERROR_STOP=1", "-q", "-f", sql).CombinedOutput(); err != nil {
		t.Fatalf("psql -f <postgres-database>: %v\n%s", err, out)
	}
	return super
}

// docSnippetNamed returns a snippet for a check that needs it as a step
// while another check runs it.
func docSnippetNamed(t *testing.T, name string) docSnippet {
	t.Helper()
	for _, s := range docSnippets(t) {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("the documentation has no snippet %q", name)
	return docSnippet{}
}

func checkInstances(t *testing.T, s map[string]docSnippet) {
	super := docsPostgres(t, s["postgres-database"].text)
	// Another role of the cluster may not connect to the database.
	pgtest.Exec(t, super, "CREATE ROLE mallory LOGIN")
	other := strings.Replace(strings.Replace(super, "dbname=postgres", "dbname=totp", 1), "user=postgres", "user=mallory", 1)
	if out, err := exec.Command("psql", other, "-c", "SELECT 1").CombinedOutput(); err == nil || !strings.Contains(string(out), "permission denied") {
		t.Errorf("another role connected to the instances' database: %v\n%s", err, out)
	}

	l := newLab(t)
	db := l.host("db", "10.0.0.5", "db.internal")
	lb := l.host("lb", "10.0.0.10", "app.example.com")
	nodes := []*labHost{l.host("node1", "10.0.0.11"), l.host("node2", "10.0.0.12")}
	single := l.host("single", "10.0.0.13")
	l.start()
	forwardPostgres(t, db, "10.0.0.5:5432", super)

	var ups []*recorder
	for i, h := range append(append([]*labHost{}, nodes...), single) {
		h.installShims()
		h.write("/etc/caddy/totp-auth.env", s["postgres-env"].text, 0o640)
		if err := os.Chown(h.path("/etc/caddy/totp-auth.env"), 0, labGID); err != nil {
			t.Fatal(err)
		}
		ups = append(ups, h.upstream("127.0.0.1:3000"))
		if h == single {
			h.write("/etc/caddy/Caddyfile", withLabGlobals(s["postgres-site"].text), 0o644)
			h.caddyService("127.0.0.1:443")
			h.waitHTTPS("app.example.com")
			continue
		}
		h.write("/etc/caddy/Caddyfile", withLabGlobals(s["lb-node"].text), 0o644)
		h.caddyService(nodes[i].ip + ":8080")
	}
	lb.write("/etc/caddy/Caddyfile", withLabGlobals(s["lb-balancer"].text), 0o644)
	lb.caddyService("127.0.0.1:443")
	lb.waitHTTPS("app.example.com")

	// Users are added with the Caddyfile and the environment file, as
	// postgres-cli lists them.
	add := docSnippet{name: "user add (postgres)", text: strings.Replace(s["postgres-cli"].text, "user list", "user add alice", 1)}
	addUser(t, nodes[0], add, "alice")
	out := snippetShell(t, nodes[1], s["postgres-cli"], "/", "")
	if !strings.Contains(out, "alice") {
		t.Errorf("postgres-cli on the other node does not list alice:\n%s", out)
	}

	b := l.browser(map[string]*labHost{"app.example.com": lb})
	c := b.at("https://app.example.com")
	signInFirst(t, c, "alice")
	for i := 0; i < 4; i++ {
		wantUser(t, upstreamGot(t, c, fmt.Sprintf("/page/%d", i)), "alice", false)
	}
	if ups[0].count() == 0 || ups[1].count() == 0 {
		t.Errorf("the balancer sent the session to one node only (%d and %d requests)", ups[0].count(), ups[1].count())
	}
	// The nodes see the client's address, not the balancer's.
	for i, h := range nodes {
		log := h.procs[len(h.procs)-1].log.String()
		if strings.Contains(log, `"client_ip":"10.0.0.10"`) {
			t.Errorf("node%d took the balancer for the client:\n%s", i+1, tail(log, 4<<10))
		}
	}

	// postgres-site on its own: the same users, the same database.
	r := l.browser(map[string]*labHost{"app.example.com": single}).at("https://app.example.com").api("POST", "login", map[string]string{"username": "alice", "password": docPassword})
	expect(t, "alice's password at the single instance", r, http.StatusOK)
	if got := r.json(t)["status"]; got != "2fa_required" {
		t.Errorf("the single instance does not know alice's enrollment: %v", got)
	}
}

func checkMigrate(t *testing.T, s map[string]docSnippet) {
	super := docsPostgres(t, docSnippetNamed(t, "postgres-database").text)
	l := newLab(t)
	db := l.host("db", "10.0.0.5", "db.internal")
	h := l.host("server", "10.0.0.1", "app.example.com")
	l.start()
	forwardPostgres(t, db, "10.0.0.5:5432", super)
	h.installShims()
	h.upstream("127.0.0.1:3000")
	// One Caddy on a bbolt file, with an enrolled user.
	h.write("/etc/caddy/Caddyfile", withLabGlobals(docSnippetNamed(t, "use-it").text), 0o644)
	h.write("/etc/caddy/Caddyfile", strings.Replace(h.read("/etc/caddy/Caddyfile"), "app.home.lab", "app.example.com", 1), 0o644)
	bolt := h.caddyService("127.0.0.1:443")
	h.waitHTTPS("app.example.com")
	addUser(t, h, userAddCommand(t), "alice")
	b := l.browser(map[string]*labHost{"app.example.com": h})
	secret := signInFirst(t, b.at("https://app.example.com"), "alice")

	h.write("/etc/caddy/totp-auth.env", docSnippetNamed(t, "postgres-env").text, 0o640)
	if err := os.Chown(h.path("/etc/caddy/totp-auth.env"), 0, labGID); err != nil {
		t.Fatal(err)
	}
	out := snippetShell(t, h, s["postgres-migrate"], "/", "")
	select {
	case <-bolt.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("systemctl stop caddy did not stop Caddy")
	}
	t.Logf("migrate:\n%s", out)

	// The instances' site on the database the file moved into.
	h.write("/etc/caddy/Caddyfile", withLabGlobals(docSnippetNamed(t, "postgres-site").text), 0o644)
	h.caddyService("127.0.0.1:443")
	h.waitHTTPS("app.example.com")
	c := l.browser(map[string]*labHost{"app.example.com": h}).at("https://app.example.com")
	r := c.api("POST", "login", map[string]string{"username": "alice", "password": docPassword})
	expect(t, "alice's password after the migration", r, http.StatusOK)
	if got := r.json(t)["status"]; got != "2fa_required" {
		t.Fatalf("after the migration alice must enroll again (%v): the enrollment did not move", got)
	}
	expect(t, "alice's authenticator after the migration", c.api("POST", "2fa", map[string]string{"code": totp(t, secret, time.Now().Add(30*time.Second))}), http.StatusOK)
}
