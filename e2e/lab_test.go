package e2e_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A lab is a small network of hosts for the documentation's examples, so
// that a snippet runs exactly as written: each host is a network and mount
// namespace of its own (Linux, as root), with the addresses the examples
// give (10.0.0.1, ...) on one bridge, the example host names in its
// /etc/hosts, a `caddy` user whose home is /var/lib/caddy as Caddy's Debian
// package makes it, and its own /etc, /var and /run, so a Caddyfile goes
// to /etc/caddy/Caddyfile and Caddy listens on :443. Nothing of it is
// visible outside the namespaces: /etc, /var and /usr/local/bin are
// overlays whose changes land in the test's directory, /run a tmpfs.
//
// Caddy's local certificate authority is the same on every host (a root
// the test makes), so certificates of one host's Caddy are trusted by
// another's where the example trusts public certificates.
type lab struct {
	t     *testing.T
	dir   string
	hosts map[string]*labHost // by name
	hub   *labHost            // holds the bridge every host is on
	ca    *labCA
	names []string // "address name..." lines of every host's /etc/hosts
}

// labHost is one host of a lab.
type labHost struct {
	lab    *lab
	name   string
	ip     string // on the bridge; "" for the hub
	dir    string // the overlays' upper directories and what the test writes
	holder *exec.Cmd
	// trustCA puts the lab's root into the system's certificate bundle,
	// as a public authority is there; without it only what a snippet
	// configures trusts it.
	trustCA bool
	procs   []*labProc
}

// labProc is a server a test started on a host.
type labProc struct {
	name   string
	cmd    *exec.Cmd
	log    *logBuffer
	exited chan struct{}
}

const labUID, labGID = 990, 990 // the caddy user, as Debian's caddy package makes it

// newLab prepares a lab; host adds hosts, start starts them.
func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the documentation's snippets run in network namespaces, which takes root (the e2e tests run as root in CI)")
	}
	for _, tool := range []string{"unshare", "nsenter", "ip", "runuser"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the documentation's snippets (util-linux, iproute2): %v", tool, err)
		}
	}
	// Not t.TempDir: its name holds the test's, and a comma in a path
	// would end the overlay's mount options.
	dir, err := os.MkdirTemp("", "totp-auth-lab-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	l := &lab{t: t, dir: dir, hosts: map[string]*labHost{}, ca: newLabCA(t)}
	l.names = []string{"127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"}
	return l
}

// host adds a host with the address ip on the lab's bridge and names that
// every host's /etc/hosts maps to it.
func (l *lab) host(name, ip string, names ...string) *labHost {
	h := &labHost{lab: l, name: name, ip: ip, dir: filepath.Join(l.dir, name), trustCA: true}
	l.hosts[name] = h
	if len(names) > 0 {
		l.names = append(l.names, ip+" "+strings.Join(names, " "))
	}
	return h
}

// start creates the namespaces of every host and the bridge between them.
func (l *lab) start() {
	t := l.t
	t.Helper()
	l.hub = &labHost{lab: l, name: "hub", dir: filepath.Join(l.dir, "hub")}
	all := []*labHost{l.hub}
	for _, h := range l.hosts {
		all = append(all, h)
	}
	for _, h := range all {
		h.prepare()
		h.startHolder()
	}
	l.hub.mustRun("ip", "link", "add", "br0", "type", "bridge")
	l.hub.mustRun("ip", "link", "set", "br0", "up")
	i := 0
	for _, h := range l.hosts {
		i++
		veth := fmt.Sprintf("v%d", i)
		l.hub.mustRun("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", fmt.Sprint(h.holder.Process.Pid))
		l.hub.mustRun("ip", "link", "set", veth, "master", "br0", "up")
		h.mustRun("ip", "addr", "add", h.ip+"/24", "dev", "eth0")
		h.mustRun("ip", "link", "set", "eth0", "up")
	}
	// Every host reaches every other on the bridge, whatever their
	// networks (192.168.1.1 beside 10.0.0.1).
	for _, h := range l.hosts {
		for _, o := range l.hosts {
			if o != h && !strings.HasPrefix(o.ip, "10.0.0.") {
				h.mustRun("ip", "route", "add", o.ip+"/32", "dev", "eth0")
			}
		}
		if !strings.HasPrefix(h.ip, "10.0.0.") {
			h.mustRun("ip", "route", "add", "10.0.0.0/24", "dev", "eth0")
		}
	}
}

// waitHTTPS waits until h's server completes a TLS handshake for name on
// port 443: Caddy gets its certificates after it starts listening.
func (h *labHost) waitHTTPS(names ...string) {
	t := h.lab.t
	t.Helper()
	for _, name := range names {
		var err error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var c net.Conn
			if c, err = h.dial(context.Background(), "tcp", "127.0.0.1:443"); err != nil {
				continue
			}
			tc := tls.Client(c, &tls.Config{ServerName: name, InsecureSkipVerify: true})
			err = tc.Handshake()
			tc.Close()
			if err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s: no TLS handshake for %s after 20s: %v", h.name, name, err)
		}
	}
}

// prepare writes what the host's overlays show over the real /etc and /var.
func (h *labHost) prepare() {
	t := h.lab.t
	for _, d := range []string{"etc", "etc.work", "var", "var.work", "bin", "bin.work", "var/lib/caddy", "etc/caddy", "etc/ssl/certs", "etc/ssl/private"} {
		if err := os.MkdirAll(filepath.Join(h.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.write("etc/hosts", strings.Join(h.lab.names, "\n")+"\n", 0o644)
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	group, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Fatal(err)
	}
	h.write("etc/passwd", strings.TrimRight(string(passwd), "\n")+fmt.Sprintf("\ncaddy:x:%d:%d:Caddy web server:/var/lib/caddy:/usr/sbin/nologin\n", labUID, labGID), 0o644)
	h.write("etc/group", strings.TrimRight(string(group), "\n")+fmt.Sprintf("\ncaddy:x:%d:\n", labGID), 0o644)
	bundle, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if h.trustCA {
		bundle = append(bundle, h.lab.ca.certPEM...)
	}
	h.write("etc/ssl/certs/ca-certificates.crt", string(bundle), 0o644)
	// Caddy's local authority, as Caddy would have made it in the caddy
	// user's data directory, with the lab's root.
	pki := "var/lib/caddy/.local/share/caddy/pki/authorities/local"
	h.write(pki+"/root.crt", string(h.lab.ca.certPEM), 0o644)
	h.write(pki+"/root.key", string(h.lab.ca.keyPEM), 0o600)
	// Storage that was cleaned a moment ago, as on a server that has run
	// before. On a first start Caddy cleans its storage while it gets its
	// first certificate, and the cleaning can delete the certificate's
	// folder while it is still empty; Caddy then retries only after a
	// minute.
	h.write("var/lib/caddy/.local/share/caddy/last_clean.json",
		fmt.Sprintf(`{"tls":{"timestamp":%q}}`, time.Now().UTC().Format(time.RFC3339Nano)), 0o600)
	if err := filepath.Walk(filepath.Join(h.dir, "var/lib/caddy"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, labUID, labGID)
	}); err != nil {
		t.Fatal(err)
	}
	// The caddy binary under test, as /usr/local/bin/caddy.
	bin := filepath.Join(h.dir, "bin", "caddy")
	if err := os.Link(caddyBin, bin); err != nil {
		b, rerr := os.ReadFile(caddyBin)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Chmod(bin, 0o755)
}

// write puts a file at path (relative to the host's root) into the host.
func (h *labHost) write(path, content string, mode os.FileMode) {
	t := h.lab.t
	t.Helper()
	p := h.path(path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// path is where a file the host sees at /etc/..., /var/... or
// /usr/local/bin/... lies in the test's directory.
func (h *labHost) path(p string) string {
	p = strings.TrimPrefix(p, "/")
	if rest, ok := strings.CutPrefix(p, "usr/local/bin/"); ok {
		return filepath.Join(h.dir, "bin", rest)
	}
	return filepath.Join(h.dir, p)
}

// read returns a file of the host.
func (h *labHost) read(p string) string {
	h.lab.t.Helper()
	b, err := os.ReadFile(h.path(p))
	if err != nil {
		h.lab.t.Fatalf("%s: %v", h.name, err)
	}
	return string(b)
}

// startHolder starts the process that holds the host's namespaces.
func (h *labHost) startHolder() {
	t := h.lab.t
	t.Helper()
	ov := func(target, name string) string {
		return fmt.Sprintf("mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s",
			target, filepath.Join(h.dir, name), filepath.Join(h.dir, name+".work"), target)
	}
	script := strings.Join([]string{
		"set -e",
		"ip link set lo up",
		// Within this network namespace only: the caddy user may listen
		// on 80 and 443, as systemd's unit lets it.
		"sysctl -qw net.ipv4.ip_unprivileged_port_start=0",
		ov("/etc", "etc"),
		ov("/var", "var"),
		ov("/usr/local/bin", "bin"),
		"mount -t tmpfs -o mode=0755 tmpfs /run",
		// What systemd's RuntimeDirectory=caddy makes.
		"install -d -o caddy -g caddy -m 0700 /run/caddy",
		"echo ready",
		"exec sleep 1800", // bounded, should a test end without its cleanups
	}, "\n")
	cmd := exec.Command("unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errs := new(logBuffer)
	cmd.Stderr = errs
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	h.holder = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("host %s: namespaces not ready: %q\n%s", h.name, line, errs.String())
	}
}

// command returns cmd run inside the host's namespaces.
func (h *labHost) command(name string, args ...string) *exec.Cmd {
	full := append([]string{"--target", fmt.Sprint(h.holder.Process.Pid), "--net", "--mount", "--", name}, args...)
	cmd := exec.Command("nsenter", full...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}
	cmd.Dir = "/"
	return cmd
}

// mustRun runs a command in the host and ends the test if it fails.
func (h *labHost) mustRun(name string, args ...string) string {
	h.lab.t.Helper()
	out, err := h.command(name, args...).CombinedOutput()
	if err != nil {
		h.lab.t.Fatalf("%s: %s %s: %v\n%s", h.name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// shell runs script with sh in the host, as root, in dir, with stdin, and
// returns its output.
func (h *labHost) shell(script, dir, stdin string, env ...string) (string, error) {
	cmd := h.command("sh", "-e", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return string(out), fmt.Errorf("still running after 60s")
	}
	return string(out), err
}

// serve starts a server process in the host (asUser "" for root) and waits
// until every address in ready accepts connections.
func (h *labHost) serve(name string, asUser string, env []string, args []string, ready ...string) *labProc {
	t := h.lab.t
	t.Helper()
	cmd := h.command(args[0], args[1:]...)
	if asUser == "caddy" {
		// nsenter itself becomes the server, as the user: no process in
		// between that would keep signals from it.
		cmd.Args = append([]string{"nsenter", "--setuid", fmt.Sprint(labUID), "--setgid", fmt.Sprint(labGID)}, cmd.Args[1:]...)
	} else if asUser != "" {
		t.Fatalf("serve as %s: only root and caddy", asUser)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(cmd.Env, env...)
	if asUser == "caddy" {
		cmd.Env = append(cmd.Env, "HOME=/var/lib/caddy")
	}
	p := &labProc{name: name, cmd: cmd, log: new(logBuffer), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start %s: %v", h.name, name, err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	h.procs = append(h.procs, p)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s on %s:\n%s", name, h.name, tail(p.log.String(), 12<<10))
		}
	})
	for _, addr := range ready {
		h.waitListening(p, addr)
	}
	return p
}

// stop ends the process, politely first.
func (p *labProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // its own process group
		<-p.exited
	}
}

// waitListening waits until addr accepts connections in the host.
func (h *labHost) waitListening(p *labProc, addr string) {
	t := h.lab.t
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-p.exited:
			t.Fatalf("%s on %s ended at start:\n%s", p.name, h.name, tail(p.log.String(), 8<<10))
		default:
		}
		if c, err := h.dial(context.Background(), "tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s: nothing listens on %s after 20s:\n%s", p.name, h.name, addr, tail(p.log.String(), 8<<10))
		}
	}
}

// inNetns runs fn on a thread that has entered the host's network
// namespace; sockets fn makes belong to that namespace for good. The
// thread is never handed back to Go, so it ends with fn.
func (h *labHost) inNetns(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with this goroutine
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", h.holder.Process.Pid))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns into %s: %w", h.name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// dial connects to addr from inside the host.
func (h *labHost) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.inNetns(func() error {
		var err error
		c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// listen opens a TCP listener on addr inside the host, adding the address
// to the host's loopback interface when it is not 127.0.0.1.
func (h *labHost) listen(addr string) net.Listener {
	t := h.lab.t
	t.Helper()
	host, _, _ := net.SplitHostPort(addr)
	if host != "127.0.0.1" && host != h.ip {
		h.mustRun("ip", "addr", "add", host+"/32", "dev", "lo")
	}
	var l net.Listener
	if err := h.inNetns(func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("%s: listen on %s: %v", h.name, addr, err)
	}
	return l
}

// upstream starts a recorder (the app behind the examples) on addr in
// the host.
func (h *labHost) upstream(addr string) *recorder {
	rec := newRecorderOn(h.lab.t, h.listen(addr))
	return rec
}

// newRecorderOn is newRecorder on a given listener.
func newRecorderOn(t *testing.T, l net.Listener) *recorder {
	rec := new(recorder)
	rec.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got := recorded{Host: r.Host, URI: r.URL.RequestURI(), Headers: r.Header, Trailer: r.Trailer}
		rec.mu.Lock()
		rec.seen = append(rec.seen, got)
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(got)
	}))
	_ = rec.Server.Listener.Close()
	rec.Server.Listener = l
	rec.Server.Start()
	t.Cleanup(rec.Close)
	return rec
}

// browser returns a client whose requests to a host name go to the lab
// host the map names for it (into that host's namespace, to the URL's
// port on 127.0.0.1), trusting the lab's certificate authority, with one
// cookie jar for every origin.
func (l *lab) browser(route map[string]*labHost) *labBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		l.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(l.ca.cert)
	tr := &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			h, ok := route[host]
			if !ok {
				return nil, fmt.Errorf("the test routes no host %s", host)
			}
			return h.dial(ctx, "tcp", "127.0.0.1:"+port)
		},
	}
	return &labBrowser{t: l.t, jar: jar, http: &http.Client{
		Jar: jar, Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// labBrowser is a client for every origin of a lab.
type labBrowser struct {
	t    *testing.T
	jar  http.CookieJar
	http *http.Client
}

// at returns a client for origin (https://app.example.com) sharing the
// browser's cookies.
func (b *labBrowser) at(origin string) *client {
	return &client{t: b.t, base: origin, http: b.http}
}

// labCA is the root of Caddy's local authority on every lab host.
type labCA struct {
	cert            *x509.Certificate
	key             *ecdsa.PrivateKey
	certPEM, keyPEM []byte
}

var labCAOnce struct {
	sync.Once
	ca  *labCA
	err error
}

func newLabCA(t *testing.T) *labCA {
	labCAOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			labCAOnce.err = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "totp_auth documentation lab root"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(30 * 24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			labCAOnce.err = err
			return
		}
		cert, _ := x509.ParseCertificate(der)
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			labCAOnce.err = err
			return
		}
		labCAOnce.ca = &labCA{cert: cert, key: key,
			certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}
	})
	if labCAOnce.err != nil {
		t.Fatal(labCAOnce.err)
	}
	return labCAOnce.ca
}

// issue returns a certificate and key for names, signed by the lab's root,
// as PEM.
func (ca *labCA) issue(t *testing.T, names ...string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}
