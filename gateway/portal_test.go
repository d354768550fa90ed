package gateway

import (
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/idna"
)

var testPortal = []string{"example.com", "other.example.net"}

func TestPortalTarget_AcceptsOnlyPortalDomainsOnALabelBoundary(t *testing.T) {
	tests := []struct {
		in        string
		allowHTTP bool
		want      string // "" means refused
	}{
		{"https://example.com/", false, "https://example.com/"},
		{"https://app.example.com/x?y=1", false, "https://app.example.com/x?y=1"},
		{"https://a.b.example.com:8443/", false, "https://a.b.example.com:8443/"},
		{"https://app.other.example.net/", false, "https://app.other.example.net/"},
		{"https://APP.Example.COM/p", false, "https://app.example.com/p"},
		{"HTTPS://app.example.com/p", false, "https://app.example.com/p"},
		{"https://bücher.example.com/", false, "https://xn--bcher-kva.example.com/"},
		{"https://BÜCHER.example.com/", false, "https://xn--bcher-kva.example.com/"},
		{"http://app.example.com/", true, "http://app.example.com/"},
		// oauth2-proxy CVE-2021-21291: a suffix without a dot boundary.
		{"https://evilexample.com/", false, ""},
		{"https://app.evilexample.com/", false, ""},
		{"https://example.com.evil.net/", false, ""},
		{"https://other.example.net.evil/", false, ""},
		{"https://example.net/", false, ""},
		{"http://app.example.com/", false, ""},
		{"ftp://app.example.com/", false, ""},
		{"javascript://app.example.com/%0aalert(1)", false, ""},
		{"//app.example.com/", false, ""},
		{"/path", false, ""},
		{"https://user@app.example.com/", false, ""},
		{"https://user:pw@app.example.com/", false, ""},
		{"https://evil.net@app.example.com/", false, ""},
		{"https://app.example.com@evil.net/", false, ""},
		{"https://app.example.com\\@evil.net/", false, ""},
		{"https://app.example.com\\.evil.net/", false, ""},
		{"https:\\\\app.example.com/", false, ""},
		{"https://app.example.com/\\evil", false, ""},
		{"https://app.example.com/\t", false, ""},
		{"https://app.example.com/\r\nSet-Cookie: a=b", false, ""},
		{"https://app.example.com/\x00", false, ""},
		{"https://app.example.com/a b", false, ""},
		{"https://0\xbc.example.com/", false, ""}, // invalid UTF-8: no single meaning
		{"https://app.example.com/\xff", false, ""},
		{"https://app.example.com./", false, ""},
		{"https://app.example.com:/", false, ""},
		{"https://app.example.com:99999/", false, ""},
		{"https://app.example.com:0/", false, ""},
		{"https://app%2eexample.com/", false, ""},
		{"https://[::1]/", false, ""},
		{"https://127.0.0.1/", false, ""},
		{"https:app.example.com/", false, ""},
		{"https:/app.example.com/", false, ""},
		{"https:///app.example.com/", false, ""},
		{"https://xn--/", false, ""},
		{"https://app.example.com/" + strings.Repeat("a", 2048), false, ""},
		{"", false, ""},
	}
	for _, tt := range tests {
		got, ok := PortalTarget(tt.in, testPortal, tt.allowHTTP)
		if tt.want == "" {
			if ok {
				t.Errorf("PortalTarget(%q) accepted as %q, want refused", tt.in, got)
			}
			continue
		}
		if !ok || got != tt.want {
			t.Errorf("PortalTarget(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestPlainHost_AgreesWithIDNA(t *testing.T) {
	for _, h := range []string{"example.com", "a-b.example.com", "ab--cd.example.com", "xn--bcher-kva.example.com",
		"-a.example.com", "a-.example.com", "a..b", "Example.com", "bücher.example.com", "a_b.example.com", "123.example.com",
		strings.Repeat("a", 63) + ".com", strings.Repeat("a", 64) + ".com"} {
		if !plainHost(h) {
			continue
		}
		if a, err := idna.Lookup.ToASCII(h); err != nil || a != h {
			t.Errorf("plainHost(%q) is true, but IDNA maps it to %q (%v)", h, a, err)
		}
	}
	for _, h := range []string{"example.com", "a-b.example.com", "123.example.com"} {
		if !plainHost(h) {
			t.Errorf("plainHost(%q) is false, want the fast path", h)
		}
	}
}

func TestPortalDomain_RefusesWhatIsNotAPlainDomain(t *testing.T) {
	for in, want := range map[string]string{
		"example.com": "example.com", "Example.COM": "example.com", "bücher.de": "xn--bcher-kva.de",
		"": "", "*.example.com": "", "example.com:443": "", "https://example.com": "", "com": "",
		"example.com.": "", "127.0.0.1": "", "exa mple.com": "", "example.com/x": "",
	} {
		got, err := PortalDomain(in)
		if want == "" {
			if err == nil {
				t.Errorf("PortalDomain(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("PortalDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func FuzzPortalTarget(f *testing.F) {
	for _, s := range []string{"https://app.example.com/x", "https://evilexample.com/", "https://a@app.example.com/",
		"https://app.example.com\\@evil/", "http://app.example.com/", "https://bücher.example.com/", "https://app.example.com:8443/?q=%zz",
		"https://app.example.com%2f@evil/", "//app.example.com", "https://[::1]:443/"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, in string, allowHTTP bool) {
		// The fast path for plain names agrees with IDNA.
		if plainHost(in) {
			if a, err := idna.Lookup.ToASCII(in); err != nil || a != in {
				t.Fatalf("plainHost(%q) is true, but IDNA maps it to %q (%v)", in, a, err)
			}
		}
		out, ok := PortalTarget(in, testPortal, allowHTTP)
		if !ok {
			return
		}
		u, err := url.Parse(out)
		if err != nil {
			t.Fatalf("%q accepted as %q, which does not parse: %v", in, out, err)
		}
		if u.Scheme != "https" && !(allowHTTP && u.Scheme == "http") {
			t.Fatalf("%q accepted with scheme %q", in, u.Scheme)
		}
		if u.User != nil || strings.ContainsAny(out, "\\ ") || hasControl(out) || len(out) > maxRedirectLen {
			t.Fatalf("%q accepted as %q, with userinfo, a backslash, a space or a control character", in, out)
		}
		host := u.Hostname()
		if host != strings.ToLower(host) || !inDomains(host, testPortal) {
			t.Fatalf("%q accepted as %q, whose host %q is not under the portal's domains", in, out, host)
		}
		// Checked again when used: the canonical form passes unchanged.
		if again, ok := PortalTarget(out, testPortal, allowHTTP); !ok || again != out {
			t.Fatalf("%q accepted as %q, which is refused or changed (%q) when checked again", in, out, again)
		}
		// What a browser resolves it to is the same host.
		base, _ := url.Parse("https://auth.example.com/.totp-auth/login")
		if ref := base.ResolveReference(u); ref.Host != u.Host {
			t.Fatalf("%q resolves to host %q, not %q", out, ref.Host, u.Host)
		}
	})
}
