package e2e_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestGate_RequestsWithoutSessionNeverReachUpstream(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	defaultPort, customPort := freePort(t), freePort(t)
	c.start(c.caddyfile("",
		site(defaultPort, c.totpAuth("totp.db", []string{"alice"}), "reverse_proxy "+up.addr())+
			site(customPort, c.totpAuth("totp.db", []string{"alice"}, "prefix /auth"), "reverse_proxy "+up.addr())),
		defaultPort, customPort)

	tests := []struct {
		name       string
		port       int
		prefix     string
		accept     string
		wantStatus int
	}{
		{"browser is sent to the login page", defaultPort, "/.totp-auth", "text/html,application/xhtml+xml,*/*;q=0.8", http.StatusFound},
		{"browser is sent to the configured prefix", customPort, "/auth", "text/html", http.StatusFound},
		{"API client gets 401 JSON", defaultPort, "/.totp-auth", "application/json", http.StatusUnauthorized},
		{"client without Accept gets 401 JSON", defaultPort, "/.totp-auth", "", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const target = "/reports/q3?format=pdf&year=2026"
			var header []string
			if tc.accept != "" {
				header = []string{"Accept", tc.accept}
			}
			r := newClient(t, tc.port).do("GET", target, nil, header...)
			expect(t, "GET "+target, r, tc.wantStatus)
			if tc.wantStatus == http.StatusFound {
				loc, err := url.Parse(r.header.Get("Location"))
				if err != nil {
					t.Fatal(err)
				}
				if loc.Path != tc.prefix+"/login" || loc.Query().Get("redirect") != target {
					t.Errorf("Location = %q, want %s/login?redirect=%s", r.header.Get("Location"), tc.prefix, url.QueryEscape(target))
				}
				return
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if r.json(t)["error"] == nil {
				t.Errorf("401 body has no error field: %s", r.body)
			}
		})
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream received %d requests without a session", n)
	}
}
