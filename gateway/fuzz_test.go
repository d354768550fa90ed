package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The seed corpus of each target runs with every `go test`; `make fuzz`
// (and CI) runs each one for a bounded time.

func FuzzSafeRedirect(f *testing.F) {
	for _, s := range []string{"/", "/app?x=1", "//evil", "/\\evil", "https://x", "/%2F%2Fx", "/a\r\nb", "/%5c", "/.totp-auth/login", "\x00", "/0/.", "/a/../b//c/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := SafeRedirect(in)
		if out == "/" {
			return
		}
		// An accepted path comes back only with its dot segments and
		// repeated slashes resolved, as a browser's Location would be,
		// and accepting it again changes nothing.
		if out != cleanPath(in) {
			t.Fatalf("SafeRedirect changed %q into %q, not its cleaned form %q", in, out, cleanPath(in))
		}
		if again := SafeRedirect(out); again != out {
			t.Fatalf("SafeRedirect(%q) = %q, not stable", out, again)
		}
		u, err := url.Parse(out)
		if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") || strings.Contains(out, "\\") {
			t.Fatalf("unsafe redirect accepted: %q", out)
		}
		for _, r := range out {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character accepted: %q", out)
			}
		}
		// What a browser resolves it to stays on the site.
		base, _ := url.Parse("https://site.example/x/y")
		if ref := base.ResolveReference(u); ref.Host != "site.example" || ref.Scheme != "https" {
			t.Fatalf("%q resolves off-site to %s", out, ref)
		}
	})
}

func FuzzCookieDecode(f *testing.F) {
	codec := newCookieCodec(make([]byte, 64), make([]byte, 32))
	t0 := time.Unix(1e9, 0)
	good, _ := codec.encode("c", cookieValue{kind: kindSession, level: LevelTwoFactor, factor: FactorTOTP, issued: t0, lastSeen: t0, expires: t0.Add(time.Hour), gen: 3, id: 7, credential: 9, user: "alice"})
	pending, _ := codec.encode("c", cookieValue{kind: kindPending, stage: stageEnroll, issued: t0, lastSeen: t0, gen: 2, user: "bob", redirect: "/app?x=1"})
	for _, s := range []string{good, pending, "", "garbage", good[:len(good)/2], strings.Repeat("A", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		v, err := codec.decode("c", value)
		if err != nil {
			return
		}
		// Only values this codec signed decode at all; they round-trip.
		again, err := codec.encode("c", v)
		if err != nil {
			t.Fatalf("decoded value does not encode again: %v", err)
		}
		if w, err := codec.decode("c", again); err != nil || w != v {
			t.Fatalf("round trip changed %+v into %+v (%v)", v, w, err)
		}
	})
}

func FuzzCookieLayout(f *testing.F) {
	// The binary layout under the signature, as if a key had leaked: no
	// input may panic or yield a user name longer than the value.
	header := func(userLen byte) []byte {
		b := []byte{cookieVersion, byte(kindSession), 0, byte(LevelTwoFactor), byte(FactorTOTP)}
		b = append(b, make([]byte, cookieHeaderLen-len(b)-1)...)
		return append(b, userLen)
	}
	f.Add(append(header(5), "alice"...))
	f.Add([]byte{})
	f.Add(header(255))
	codec := newCookieCodec(make([]byte, 64), make([]byte, 32))
	f.Fuzz(func(t *testing.T, raw []byte) {
		value, err := codec.sc.Encode("c", raw)
		if err != nil {
			return
		}
		v, err := codec.decode("c", value)
		if err == nil && len(v.user)+len(v.redirect)+cookieHeaderLen != len(raw) {
			t.Fatalf("decoded lengths do not add up for %x", raw)
		}
	})
}

func FuzzReadForm(f *testing.F) {
	f.Add("application/json", `{"username":"alice","password":"x"}`)
	f.Add("application/json", `{"code":123}`)
	f.Add("application/json", `[]`)
	f.Add("application/x-www-form-urlencoded", "username=alice&password=x&csrf=y")
	f.Add("application/x-www-form-urlencoded", "a=1&a=2")
	f.Add("application/x-www-form-urlencoded", "%zz")
	f.Add("text/plain", "x")
	f.Add("application/json; charset=utf-8", "")
	f.Fuzz(func(t *testing.T, contentType, body string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		got, err := readForm(w, r)
		if err != nil {
			re, ok := err.(*requestError)
			if !ok || re.status < 400 || re.status > 499 {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		for k, v := range got.values {
			if len(k)+len(v) > maxBody {
				t.Fatalf("field larger than the body limit")
			}
		}
	})
}

func FuzzStripIdentity(f *testing.F) {
	for _, s := range []string{"Remote-User", "remote_user", "REMOTE-USER", "Remote-Userx", "X-Remote-User", "Remote__User"} {
		f.Add(s)
	}
	g := &Gateway{userHeaderKey: headerKey("Remote-User")}
	f.Fuzz(func(t *testing.T, name string) {
		h := http.Header{name: {"root"}}
		g.stripIdentity(h)
		folded := strings.ReplaceAll(strings.ToLower(name), "_", "-")
		if folded == "remote-user" && len(h) != 0 {
			t.Fatalf("%q survived", name)
		}
		if folded != "remote-user" && len(h) != 1 {
			t.Fatalf("%q was removed", name)
		}
	})
}
