package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// A server that holds a portal block and would answer a request none of
// its sites matches with Caddy's empty 200 does not start: the message
// names the fix.
func TestPortal_StartRefusedWithoutASiteForOtherHosts(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	block := c.totpAuth("totp.db", []string{"alice"}, "cookie_domain "+portalDomain, "portal "+portalDomain)
	cfg := c.caddyfile("", fmt.Sprintf("http://auth.%s:%d {\n\tbind 127.0.0.1\n\t%s\n}\n", portalDomain, port, block))
	out, err := c.run("run", "--config", c.writeConfig("Caddyfile", cfg), "--adapter", "caddyfile")
	if err == nil {
		t.Fatalf("caddy run started a portal whose server answers other hosts with 200:\n%s", tail(out, 4<<10))
	}
	for _, w := range []string{"holds a portal block", "would let every visitor through", fmt.Sprintf("http://:%d {", port), "respond 421"} {
		if !strings.Contains(out, w) {
			t.Errorf("caddy run's output lacks %q:\n%s", w, tail(out, 4<<10))
		}
	}
	// With the site for other hosts, the same configuration starts.
	c.start(cfg+catchAllSite(port), port)
}

// Every wrong proxy line the attack review found, against the portal set
// up as the module requires: refused, never the upstream, for a visitor
// without a session and for a signed-in user the app's policy excludes.
func TestPortal_WrongProxySetupsAreRefused(t *testing.T) {
	t.Parallel()
	s := startPortal(t)
	s.startNginxWith(t, "") // proxy_pass to the portal's address, without proxy_set_header Host
	wrong := newCaddy(t)
	port := freePort(t)
	fa := func(host, uri, hostLine string) string {
		return fmt.Sprintf("http://%s.%s:%d {\n\tbind 127.0.0.1\n\tforward_auth 127.0.0.1:%d {\n\t\turi %s\n\t\t%s\n\t\tcopy_headers Remote-User Remote-Groups\n\t}\n\treverse_proxy %s\n}\n",
			host, portalDomain, port, s.portalPort, uri, hostLine, s.up.addr())
	}
	portalName := fmt.Sprintf("header_up Host auth.%s:%d", portalDomain, s.portalPort)
	wrong.start(wrong.caddyfile("",
		fa("nohost", prefix+"/verify?allow_groups=admins", "")+ // no header_up Host: the app's own name
			fa("byip", prefix+"/verify?allow_groups=admins", "header_up Host {upstream_hostport}")+ // the upstream is an address
			fa("outside", "/verify?allow_groups=admins", portalName)+ // uri outside prefix
			fa("loginpage", prefix+"/login?allow_groups=admins", portalName)), // a page, not verify
		port)

	bob := hostClient(t, s.appURL(), nil)
	signInAtPortal(t, s, bob, "bob", s.appURL()+"/")
	anon := hostClient(t, s.appURL(), nil)
	apps := []string{s.nginxURL()}
	for _, host := range []string{"nohost", "byip", "outside", "loginpage"} {
		apps = append(apps, fmt.Sprintf("http://%s.%s:%d", host, portalDomain, port))
	}
	before := s.up.count()
	for _, who := range []struct {
		name string
		c    *client
	}{{"a visitor without a session", anon}, {"bob (not in admins)", bob}} {
		for _, app := range apps {
			for _, accept := range []string{"text/html", "application/json"} {
				r := who.c.at(app).do("GET", "/secret", nil, "Accept", accept)
				if r.status < 400 && r.status != http.StatusFound {
					t.Errorf("%s at %s (Accept %s): %d, want a refusal\n%s", who.name, app, accept, r.status, tail(string(r.body), 512))
				}
				if strings.Contains(string(r.body), `"uri":"/secret"`) {
					t.Errorf("%s at %s reached the upstream", who.name, app)
				}
			}
		}
	}
	if n := s.up.count() - before; n != 0 {
		t.Fatalf("%d requests through a wrong proxy setup reached the upstream", n)
	}
	// The portal logged the misdirected checks, naming the fix.
	if log := s.portal.log.String(); !strings.Contains(log, "which is not a verify endpoint") {
		t.Errorf("the portal's log does not name a check sent to the wrong path:\n%s", tail(log, 4<<10))
	}
}
