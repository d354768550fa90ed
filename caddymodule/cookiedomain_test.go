package caddymodule

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestCookieDomain_PublicSuffixRefusedNamingADomainUnderIt(t *testing.T) {
	for _, tc := range []struct{ domain, advice string }{
		{"home.arpa", `"lab.home.arpa"`},
		{"lan", `"lab.lan"`},
		{".home.arpa", `"lab.home.arpa"`},
		{"HOME.ARPA", `"lab.home.arpa"`},
		{"com", `"lab.com"`},
		{"co.uk", `"lab.co.uk"`},
		{"github.io", `"lab.github.io"`},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			var h TOTPAuth
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("totp_auth {\n\tcookie_domain " + tc.domain + "\n}"))
			if err == nil {
				t.Fatalf("cookie_domain %s accepted", tc.domain)
			}
			for _, want := range []string{"is a public suffix", "browsers refuse a cookie for it", "such as " + tc.advice, "Testfile:2"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestCookieDomain_DomainUnderASuffixAccepted(t *testing.T) {
	for _, domain := range []string{"lab.home.arpa", "example.com", ".example.com", "home.lab", "x.lan", "portal.test"} {
		var h TOTPAuth
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("totp_auth {\n\tcookie_domain " + domain + "\n}")); err != nil {
			t.Errorf("cookie_domain %s: %v", domain, err)
		}
	}
}

// The JSON form is checked at start too, before any database is opened.
func TestCookieDomain_PublicSuffixInJSONStopsProvision(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "totp.db")
	err := provision(t, &TOTPAuth{DBPath: dbPath, EncryptionKey: key64, CookieDomain: "home.arpa"})
	if err == nil || !strings.Contains(err.Error(), `use a domain of your own under it, such as "lab.home.arpa"`) {
		t.Fatalf("Provision with cookie_domain home.arpa: %v", err)
	}
	if _, ok := databases.References(dbPath); ok {
		t.Error("the database was opened for a configuration that is refused")
	}
}
