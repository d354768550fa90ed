package e2e_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Every snippet of README.md and docs/*.md runs as written.
//
// A fenced block in caddyfile, nginx, sh or sql carries a name in an HTML
// comment on the line above it (<!-- snippet: portal -->), and docChecks
// below runs it: Caddyfiles in real Caddy servers, nginx sites in Debian's
// nginx, SQL in psql on a real PostgreSQL cluster, commands in sh. They run
// in a lab (lab_test.go): hosts that are network namespaces with the
// examples' addresses and host names, Caddy run by the `caddy` user from
// /etc/caddy/Caddyfile as Caddy's Debian package runs it. What the test
// changes, and nothing else:
//
//   - Every Caddyfile gets the global options `local_certs` and
//     `skip_install_trust`: the lab has no Internet, so certificates for
//     public names come from Caddy's local authority (whose root the
//     lab's hosts and browsers trust, as they would a public one).
//   - /usr/local/bin holds the caddy binary under test, and two small
//     stand-ins: `sudo` (`sudo -u caddy cmd` runs cmd as caddy with its
//     HOME, as Debian's sudo does; `sudo cmd` runs cmd) and `systemctl`
//     (`systemctl stop|reload caddy` stops or reloads the Caddy the test
//     started). `go run ./cmd/caddy` and `go build -o caddy ./cmd/caddy`
//     stand for that binary, which the test built once.
//   - The PostgreSQL of the examples (db.internal) is a cluster the test
//     starts, reached through a forwarder listening at db.internal:5432;
//     it trusts local connections, so passwords are not checked.
//
// A block in one of those languages without a name, a name the test does
// not know, or a name no check runs fails the test, so that no new
// snippet goes unchecked. Blocks in text (syntax, listings, sample
// output), ini (Grafana, systemd), yaml (Traefik) and json (API bodies)
// are not run.

// docSnippet is one fenced block of the documentation.
type docSnippet struct {
	file       string
	line       int
	lang, name string
	text       string
}

func (s docSnippet) String() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

// runLangs are the languages whose blocks are run; notRunLangs are the
// others a block may be in.
var (
	runLangs    = map[string]bool{"caddyfile": true, "nginx": true, "sh": true, "sql": true}
	notRunLangs = map[string]bool{"text": true, "ini": true, "yaml": true, "json": true}
	snippetName = regexp.MustCompile(`^<!-- snippet: ([a-z0-9-]+) -->$`)
)

// docSnippets reads every fenced block of README.md and docs/*.md.
func docSnippets(t *testing.T) []docSnippet {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(repoRoot, "README.md")}, files...)
	var out []docSnippet
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, f)
		lines := strings.Split(string(b), "\n")
		for i := 0; i < len(lines); i++ {
			trimmed := strings.TrimLeft(lines[i], " \t")
			if !strings.HasPrefix(trimmed, "```") {
				continue
			}
			indent := lines[i][:len(lines[i])-len(trimmed)]
			s := docSnippet{file: rel, line: i + 1, lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))}
			for j := i - 1; j >= 0; j-- {
				if p := strings.TrimSpace(lines[j]); p != "" {
					if m := snippetName.FindStringSubmatch(p); m != nil {
						s.name = m[1]
					}
					break
				}
			}
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				body = append(body, strings.TrimPrefix(lines[i], indent))
			}
			if i == len(lines) {
				t.Fatalf("%s: the block has no closing ```", s)
			}
			s.text = strings.Join(body, "\n") + "\n"
			out = append(out, s)
		}
	}
	return out
}

// docCheck runs the snippets it names together, as one setup.
type docCheck struct {
	name     string
	snippets []string
	run      func(t *testing.T, s map[string]docSnippet)
}

// docNotRun are the snippets this test cannot run, and why. Each is
// checked some other way or is an instruction for a machine the tests
// do not have.
var docNotRun = map[string]string{
	"make-test":       "it runs the test suite, this test included",
	"dev-test":        "it runs the test suite, this test included",
	"dev-one-test":    "it runs this very test",
	"xcaddy":          "it needs xcaddy and the Internet; TestDeploy_DockerfileAndREADMEBuildThisModulesPlugin checks its module path",
	"xcaddy-checkout": "it needs xcaddy and the Internet; TestDeploy_DockerfileAndREADMEBuildThisModulesPlugin checks its module path",
	"go-tarball":      "it downloads Go from go.dev",
	"docker-binary":   "it needs Docker; TestDeploy_* check the Dockerfile",
	"docker-compose":  "it needs Docker; TestDeploy_ComposeCaddyfileIsValid checks its Caddyfile",
	"install-binary":  "it replaces the binary of Caddy's Debian package under systemd",
	"upgrade":         "it replaces the binary of Caddy's Debian package under systemd",
	// TestDocs_AppPasswordsSnippetsRunAsWritten runs these against a real
	// Caddy, with curl and rclone talking to a WebDAV upstream.
	"app-passwords-site":   "run by TestDocs_AppPasswordsSnippetsRunAsWritten",
	"app-passwords-curl":   "run by TestDocs_AppPasswordsSnippetsRunAsWritten",
	"app-passwords-read":   "run by TestDocs_AppPasswordsSnippetsRunAsWritten",
	"app-passwords-rclone": "run by TestDocs_AppPasswordsSnippetsRunAsWritten",
}

func TestDocs_EverySnippetIsNamedAndChecked(t *testing.T) {
	t.Parallel()
	checked := map[string]string{}
	for _, c := range docChecks {
		for _, n := range c.snippets {
			if other, ok := checked[n]; ok {
				t.Errorf("snippet %q is run by the checks %q and %q: one is enough", n, other, c.name)
			}
			checked[n] = c.name
		}
	}
	found := map[string]docSnippet{}
	for _, s := range docSnippets(t) {
		switch {
		case s.lang == "":
			t.Errorf("%s: a block without a language: give it one (caddyfile, nginx, sh, sql, or text, ini, yaml, json for what is not run)", s)
			continue
		case notRunLangs[s.lang]:
			if s.name != "" {
				t.Errorf("%s: block %q is marked as run but is %s, which is not", s, s.name, s.lang)
			}
			continue
		case !runLangs[s.lang]:
			t.Errorf("%s: unknown language %q", s, s.lang)
			continue
		case s.name == "":
			t.Errorf("%s: a %s block without <!-- snippet: name --> above it: name it, and run it in e2e/docs_test.go", s, s.lang)
			continue
		}
		if prev, ok := found[s.name]; ok {
			t.Errorf("%s: snippet name %q is used at %s too", s, s.name, prev)
		}
		found[s.name] = s
		_, run := checked[s.name]
		_, notRun := docNotRun[s.name]
		if !run && !notRun {
			t.Errorf("%s: snippet %q is run by no check in e2e/docs_test.go", s, s.name)
		}
		if run && notRun {
			t.Errorf("%s: snippet %q is both run and listed as not run", s, s.name)
		}
	}
	for n := range checked {
		if _, ok := found[n]; !ok {
			t.Errorf("check %q runs snippet %q, which no page has any more", checked[n], n)
		}
	}
	for n := range docNotRun {
		if _, ok := found[n]; !ok {
			t.Errorf("docNotRun lists snippet %q, which no page has any more", n)
		}
	}
}

func TestDocs_EverySnippetRunsAsWritten(t *testing.T) {
	all := map[string]docSnippet{}
	for _, s := range docSnippets(t) {
		if s.name != "" {
			all[s.name] = s
		}
	}
	for _, c := range docChecks {
		t.Run(c.name, func(t *testing.T) {
			s := map[string]docSnippet{}
			for _, n := range c.snippets {
				sn, ok := all[n]
				if !ok {
					t.Fatalf("no snippet %q in the documentation", n)
				}
				s[n] = sn
			}
			c.run(t, s)
		})
	}
}

// The pages name no file that is not in the repository.
func TestDocs_LinksPointAtFilesOfTheRepository(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	files = append(files, filepath.Join(repoRoot, "README.md"))
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, f)
		if strings.Contains(string(b), "SPEC") {
			t.Errorf("%s refers to a SPEC, which is not in the repository", rel)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			p := filepath.Join(filepath.Dir(f), target)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s links to %s, which is not in the repository", rel, target)
			}
			if !strings.HasPrefix(p, repoRoot+string(filepath.Separator)) {
				t.Errorf("%s links to %s, outside the repository", rel, target)
			}
		}
	}
}

// withLabGlobals returns a Caddyfile with local_certs and
// skip_install_trust added to its global options.
func withLabGlobals(caddyfile string) string {
	const add = "\tlocal_certs\n\tskip_install_trust\n"
	if strings.HasPrefix(caddyfile, "{\n") {
		return "{\n" + add + strings.TrimPrefix(caddyfile, "{\n")
	}
	return "{\n" + add + "}\n\n" + caddyfile
}

// labShims are the sudo and systemctl of the lab's hosts.
const labSudo = `#!/bin/sh
# sudo of the documentation lab: -u <user> runs the command as that user
# with the user's HOME, as Debian's sudo does.
if [ "$1" = "-u" ]; then
	user=$2
	shift 2
	home=$(getent passwd "$user" | cut -d: -f6)
	exec env HOME="$home" runuser -u "$user" -- "$@"
fi
exec "$@"
`

const labSystemctl = `#!/bin/sh
# systemctl of the documentation lab: the Caddy the test started.
case "$1 $2" in
"stop caddy") exec runuser -u caddy -- env HOME=/var/lib/caddy caddy stop --config /etc/caddy/Caddyfile ;;
"reload caddy") exec runuser -u caddy -- env HOME=/var/lib/caddy caddy reload --config /etc/caddy/Caddyfile --force ;;
esac
echo "systemctl of the documentation lab knows no $*" >&2
exit 1
`

// installShims puts the lab's sudo and systemctl on the host.
func (h *labHost) installShims() {
	h.write("/usr/local/bin/sudo", labSudo, 0o755)
	h.write("/usr/local/bin/systemctl", labSystemctl, 0o755)
}

// caddyService starts Caddy as Caddy's Debian unit does: as caddy, with
// /etc/caddy/Caddyfile and the variables of /etc/caddy/totp-auth.env
// (its EnvironmentFile in the examples) if there is one. It waits until
// every address in ready listens.
func (h *labHost) caddyService(ready ...string) *labProc {
	h.lab.t.Helper()
	var env []string
	if b, err := os.ReadFile(h.path("/etc/caddy/totp-auth.env")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
				env = append(env, k+"="+strings.Trim(v, `"`))
			}
		}
	}
	return h.serve("caddy", "caddy", env, []string{"caddy", "run", "--environ", "--config", "/etc/caddy/Caddyfile"}, ready...)
}

// snippetShell runs a sh snippet on the host, as root, in dir, with stdin.
func snippetShell(t *testing.T, h *labHost, s docSnippet, dir, stdin string) string {
	t.Helper()
	out, err := h.shell(s.text, dir, stdin)
	if err != nil {
		t.Fatalf("%s (%s) on %s: %v\n%s\n%s", s.name, s, h.name, err, s.text, out)
	}
	return out
}

// docPassword is the password of every user the documentation's checks add.
const docPassword = "Tq7-lantern-orbit-4412"

// addUser adds user on the host through command, a `user add` snippet
// run as written (or the test's own with the same words).
func addUser(t *testing.T, h *labHost, s docSnippet, user string) {
	t.Helper()
	text := s.text
	if user != "alice" {
		text = strings.Replace(text, "user add alice", "user add "+user, 1)
	}
	s.text = text
	out := snippetShell(t, h, s, "/", docPassword+"\n")
	if !strings.Contains(out, "Added "+user) {
		t.Fatalf("%s: user add %s answered\n%s", s, user, out)
	}
}

// signInFirst signs user in for the first time at the portal or site
// origin over the JSON API, enrolling an authenticator; it returns the
// TOTP secret.
func signInFirst(t *testing.T, c *client, user string) string {
	t.Helper()
	r := c.api("POST", "login", map[string]string{"username": user, "password": docPassword})
	expect(t, "POST login as "+user, r, http.StatusOK)
	if got := r.json(t)["status"]; got != "enroll_required" {
		t.Fatalf("POST login: status %v, want enroll_required\n%s", got, r.body)
	}
	r = c.api("GET", "setup", nil)
	expect(t, "GET setup", r, http.StatusOK)
	secret, _ := r.json(t)["secret"].(string)
	r = c.api("POST", "setup", map[string]string{"code": totp(t, secret, time.Now())})
	expect(t, "POST setup", r, http.StatusOK)
	return secret
}

// signInAgain signs an enrolled user in with the password and a code of
// the next time step (the enrollment's is spent).
func signInAgain(t *testing.T, c *client, user, secret string) {
	t.Helper()
	r := c.api("POST", "login", map[string]string{"username": user, "password": docPassword})
	expect(t, "POST login as "+user, r, http.StatusOK)
	if got := r.json(t)["status"]; got != "2fa_required" {
		t.Fatalf("POST login as %s: status %v, want 2fa_required", user, got)
	}
	expect(t, "POST 2fa as "+user, c.api("POST", "2fa", map[string]string{"code": totp(t, secret, time.Now().Add(30*time.Second))}), http.StatusOK)
}

// upstreamGot requests path at c as an API client and returns what the
// upstream received, failing unless it got there.
func upstreamGot(t *testing.T, c *client, path string, header ...string) recorded {
	t.Helper()
	r := c.do("GET", path, nil, append([]string{"Accept", "application/json"}, header...)...)
	expect(t, "GET "+c.base+path, r, http.StatusOK)
	return recordedOf(t, r)
}

// wantUser fails unless got carries exactly user as Remote-User and no
// session cookie of the portal.
func wantUser(t *testing.T, got recorded, user string, noSessionCookie bool) {
	t.Helper()
	if h := got.Headers["Remote-User"]; len(h) != 1 || h[0] != user {
		t.Errorf("upstream got Remote-User %q, want %q (headers %v)", h, user, got.Headers)
	}
	if noSessionCookie {
		for _, c := range got.Headers["Cookie"] {
			if strings.Contains(c, "totp_auth_session=") {
				t.Errorf("upstream got the session cookie: Cookie %q", c)
			}
		}
	}
}
