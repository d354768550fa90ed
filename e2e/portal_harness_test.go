package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Portal mode runs three real servers in front of one real upstream: the
// portal (Caddy with totp_auth), a second Caddy whose forward_auth asks
// the portal, and nginx whose auth_request does. Host names are under
// portal.test, which only these tests resolve, always to 127.0.0.1.

const portalDomain = "portal.test"

// recorder is the real upstream of portal tests: it records what each
// request carried, trailers included, and answers it as JSON.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []recorded
}

type recorded struct {
	Host    string              `json:"host"`
	URI     string              `json:"uri"`
	Headers map[string][]string `json:"headers"`
	Trailer map[string][]string `json:"trailer"`
}

func newRecorder(t *testing.T) *recorder {
	rec := new(recorder)
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // trailers arrive after the body
		got := recorded{Host: r.Host, URI: r.URL.RequestURI(), Headers: r.Header, Trailer: r.Trailer}
		rec.mu.Lock()
		rec.seen = append(rec.seen, got)
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(got)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorder) addr() string { return rec.Listener.Addr().String() }

// count is how many requests reached the upstream.
func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.seen)
}

// portalSetup is the portal, the app servers in front of the upstream, and
// their ports.
type portalSetup struct {
	portal, apps *caddyProc
	up           *recorder
	// portalPort serves auth.portal.test; appPort serves app.portal.test
	// (forward_auth to verify) and wiki.portal.test (verify with
	// ?allow_groups=admins); nginxPort is nginx's app.portal.test.
	portalPort, appPort, nginxPort int
}

// portalURL, appURL and nginxURL are the origins browsers see.
func (s *portalSetup) portalURL() string {
	return fmt.Sprintf("http://auth.%s:%d", portalDomain, s.portalPort)
}
func (s *portalSetup) appURL() string {
	return fmt.Sprintf("http://app.%s:%d", portalDomain, s.appPort)
}
func (s *portalSetup) wikiURL() string {
	return fmt.Sprintf("http://wiki.%s:%d", portalDomain, s.appPort)
}
func (s *portalSetup) nginxURL() string {
	return fmt.Sprintf("http://app.%s:%d", portalDomain, s.nginxPort)
}

// startPortal starts the portal for users (alice in admins and staff, bob
// in staff, carol in no group; the portal lets admins and staff through)
// and the second Caddy in front of the upstream. extra adds lines to the
// totp_auth block.
func startPortal(t *testing.T, extra ...string) *portalSetup {
	t.Helper()
	s := &portalSetup{portal: newCaddy(t), apps: newCaddy(t), up: newRecorder(t), portalPort: freePort(t), appPort: freePort(t)}
	block := s.portal.totpAuth("totp.db", []string{"alice", "bob", "carol"}, append([]string{
		"cookie_domain " + portalDomain,
		"portal " + portalDomain,
		"group admins alice",
		"group staff alice bob",
	}, extra...)...)
	// Only 127.0.0.1 is a trusted proxy: a client calling from another
	// loopback address plays a caller outside trusted_proxies.
	// The catch-all site refuses every other host: without it Caddy
	// answers a verify request that misses the portal's site with an empty
	// 200, and the module refuses to start.
	s.portal.start(s.portal.caddyfile("\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n",
		fmt.Sprintf("http://auth.%s:%d {\n\tbind 127.0.0.1\n\t%s\n\trespond \"the portal's own page\"\n}\n", portalDomain, s.portalPort, block)+
			catchAllSite(s.portalPort)),
		s.portalPort)

	forwardAuth := func(uri string) string {
		return fmt.Sprintf("forward_auth 127.0.0.1:%d {\n\t\turi %s\n\t\theader_up Host auth.%s:%d\n\t\tcopy_headers Remote-User Remote-Groups\n\t}",
			s.portalPort, uri, portalDomain, s.portalPort)
	}
	apps := fmt.Sprintf("http://app.%[1]s:%[2]d {\n\tbind 127.0.0.1\n\t%[3]s\n\treverse_proxy %[4]s\n}\n"+
		"http://wiki.%[1]s:%[2]d {\n\tbind 127.0.0.1\n\t%[5]s\n\treverse_proxy %[4]s\n}\n",
		portalDomain, s.appPort, forwardAuth(prefix+"/verify"), s.up.addr(), forwardAuth(prefix+"/verify?allow_groups=admins"))
	s.apps.start(s.apps.caddyfile("", apps), s.appPort)
	return s
}

// catchAllSite is the site that refuses every host the others do not
// name, on port, as the portal's server needs it.
func catchAllSite(port int) string {
	return fmt.Sprintf("http://:%d {\n\tbind 127.0.0.1\n\trespond 421\n}\n", port)
}

// nginxProc is a real nginx, a direct child of the test in the
// foreground, with its prefix, configuration, logs and pid in a temporary
// directory.
type nginxProc struct {
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *logBuffer
}

// startNginx runs nginx on port in front of the upstream, asking the
// portal with auth_request and sending 401s to the login page.
func (s *portalSetup) startNginx(t *testing.T) {
	t.Helper()
	s.startNginxWith(t, fmt.Sprintf("proxy_set_header Host auth.%s:%d;", portalDomain, s.portalPort))
}

// startNginxWith is startNginx with hostLine as the line that names the
// portal to it (the Host of the verify request): "" leaves nginx's
// default, the address in proxy_pass.
func (s *portalSetup) startNginxWith(t *testing.T, hostLine string) {
	t.Helper()
	const bin = "/usr/sbin/nginx"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("nginx is not installed at %s (`make test-deps` installs Debian's nginx): %v", bin, err)
	}
	s.nginxPort = freePort(t)
	n := &nginxProc{dir: t.TempDir(), log: new(logBuffer)}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers write temp files in a directory only root may enter
	}
	conf := fmt.Sprintf(`%[1]s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 64; }
http {
	access_log %[2]s/access.log;
	client_body_temp_path %[2]s/client_body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	server {
		listen 127.0.0.1:%[3]d;
		server_name app.%[4]s;
		location / {
			auth_request /totp-auth-verify;
			auth_request_set $user $upstream_http_remote_user;
			auth_request_set $groups $upstream_http_remote_groups;
			auth_request_set $login $upstream_http_location;
			error_page 401 =302 $login;
			proxy_set_header Remote-User $user;
			proxy_set_header Remote-Groups $groups;
			proxy_pass http://%[5]s;
		}
		location /admin/ {
			auth_request /totp-auth-verify-admins;
			auth_request_set $user $upstream_http_remote_user;
			auth_request_set $login $upstream_http_location;
			error_page 401 =302 $login;
			proxy_set_header Remote-User $user;
			proxy_pass http://%[5]s;
		}
		location = /totp-auth-verify {
			internal;
			proxy_pass http://127.0.0.1:%[6]d%[7]s/verify/nginx;
			proxy_pass_request_body off;
			proxy_set_header Content-Length "";
			%[8]s
			proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
			proxy_set_header X-Original-Method $request_method;
		}
		location = /totp-auth-verify-admins {
			internal;
			proxy_pass http://127.0.0.1:%[6]d%[7]s/verify/nginx?allow_groups=admins;
			proxy_pass_request_body off;
			proxy_set_header Content-Length "";
			%[8]s
			proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
			proxy_set_header X-Original-Method $request_method;
		}
	}
}
`, user, n.dir, s.nginxPort, portalDomain, s.up.addr(), s.portalPort, prefix, hostLine)
	confPath := filepath.Join(n.dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "-p", n.dir, "-c", confPath, "-g", "daemon off;")
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	n.exited = make(chan struct{})
	go func() {
		_ = n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		_ = n.cmd.Process.Signal(os.Interrupt) // SIGINT: fast shutdown
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
		if t.Failed() {
			errLog, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", n.log.String(), tail(string(errLog), 8<<10))
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-n.exited:
			errLog, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
			t.Fatalf("nginx exited at start: %s\n%s", n.log.String(), errLog)
		default:
		}
		// nginx writes its pid file only once its sockets are bound: a
		// connection before that could reach whatever else took the port.
		if _, err := os.Stat(filepath.Join(n.dir, "nginx.pid")); err == nil {
			if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.nginxPort), time.Second); err == nil {
				conn.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx not listening after 10s")
		}
	}
}

// loopbackDialer resolves every host to 127.0.0.1 (keeping the port), from
// source address from ("" for the default), so test host names never
// reach a real resolver.
func loopbackDialer(from string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, "tcp", "127.0.0.1:"+port)
	}
}

// hostClient is a client for origin (such as http://app.portal.test:port)
// with a cookie jar that sees the real host names, so a cookie for the
// parent domain goes to every site under it.
func hostClient(t *testing.T, origin string, jar http.CookieJar) *client {
	if jar == nil {
		var err error
		if jar, err = cookiejar.New(nil); err != nil {
			t.Fatal(err)
		}
	}
	return &client{t: t, base: origin, http: &http.Client{
		Jar:           jar,
		Timeout:       15 * time.Second,
		Transport:     &http.Transport{DialContext: loopbackDialer(""), DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// at returns a client for another origin sharing c's cookies.
func (c *client) at(origin string) *client { return hostClient(c.t, origin, c.http.Jar) }

// recordedOf decodes the upstream's answer.
func recordedOf(t *testing.T, r response) recorded {
	t.Helper()
	var got recorded
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("not the upstream's answer (%d): %v\n%s", r.status, err, r.body)
	}
	return got
}

// identity returns every header of got a server could read as name.
func identity(got recorded, name string) []string {
	want := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	var out []string
	for _, h := range []map[string][]string{got.Headers, got.Trailer} {
		for k, vs := range h {
			if strings.ReplaceAll(strings.ToLower(k), "_", "-") == want {
				out = append(out, k+": "+strings.Join(vs, "|"))
			}
		}
	}
	return out
}
