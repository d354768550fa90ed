package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/totp-auth/totp_auth/internal/trailertest"
)

// What reaches the upstream (SPEC §4 rules 10 and 23).

func TestUpstream_OddSpellingsOfOurCookieAreRemovedToo(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	session := c.cookie("totp_auth_session").Value
	for _, tt := range []struct {
		name   string
		cookie string
		want   []string
	}{
		{"space before =", "totp_auth_session =" + session, nil},
		{"tab before =", "totp_auth_session\t=" + session + "; lang=en", []string{"lang=en"}},
		{"spaces around", "theme=dark;  totp_auth_session  =" + session, []string{"theme=dark"}},
	} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/app", nil)
		req.Header.Set("Accept", "application/json")
		req.Header["Cookie"] = []string{tt.cookie}
		if r := e.client().do(req); r.StatusCode != 200 {
			t.Fatalf("%s: %d (the gateway should read this spelling as its cookie)", tt.name, r.StatusCode)
		}
		got := (<-e.upstream)["Cookie"]
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%s: upstream got Cookie %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestUpstream_IdentityInRequestTrailersIsRemoved(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	trailers := make(chan http.Header, 1)
	srv := httptest.NewServer(e.gw.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		trailers <- r.Trailer.Clone()
	})))
	defer srv.Close()
	for _, name := range []string{"Remote-User", "Remote_User", "remote-user"} {
		req, err := trailertest.NewRequest("POST", srv.URL+"/upload", "payload", name, "root")
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json")
		req.AddCookie(c.cookie("totp_auth_session"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", name, resp.StatusCode)
		}
		got := <-trailers
		for k, v := range got {
			if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "remote-user") {
				t.Errorf("trailer %s: upstream got %s: %q", name, k, v)
			}
		}
	}
}

// The upstream learns how the user signed in, truthfully: a backup code is
// not a TOTP code; and a client cannot claim a factor of its own.
func TestUpstream_FactorHeaderSaysHowTheUserSignedInAndClientSpellingsAreStripped(t *testing.T) {
	e := newEnv(t)
	factorOf := func(c *client) []string {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+"/app", nil)
		req.Header.Set("Accept", "application/json")
		for _, name := range []string{"Remote-Auth-Factor", "remote-auth-factor", "Remote_Auth_Factor", "REMOTE_AUTH_FACTOR"} {
			req.Header[name] = []string{"passkey"}
		}
		if r := c.do(req); r.StatusCode != 200 {
			t.Fatalf("%d %s", r.StatusCode, r.Body)
		}
		h := <-e.upstream
		var got []string
		for name, vals := range h {
			if strings.ReplaceAll(strings.ToLower(name), "_", "-") == "remote-auth-factor" {
				got = append(got, name+": "+strings.Join(vals, "|"))
			}
		}
		return got
	}
	alice := e.client()
	secret, codes := alice.enroll("alice")
	if got := factorOf(alice); len(got) != 1 || got[0] != "Remote-Auth-Factor: totp" {
		t.Fatalf("after enrollment the upstream got %q, want Remote-Auth-Factor: totp", got)
	}
	alice.signIn("alice", secret)
	if got := factorOf(alice); len(got) != 1 || got[0] != "Remote-Auth-Factor: totp" {
		t.Fatalf("after a TOTP sign-in the upstream got %q", got)
	}
	b := e.client()
	b.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword})
	if r := b.postJSON("/.totp-auth/2fa", map[string]string{"code": codes[0]}); r.JSON["status"] != "regenerate_backup_codes" {
		t.Fatalf("backup code: %d %s", r.StatusCode, r.Body)
	}
	if r := b.postJSON("/.totp-auth/backup-codes", map[string]string{}); r.StatusCode != 200 {
		t.Fatalf("new codes: %d %s", r.StatusCode, r.Body)
	}
	if got := factorOf(b); len(got) != 1 || got[0] != "Remote-Auth-Factor: backup_code" {
		t.Fatalf("after a backup-code sign-in the upstream got %q, want Remote-Auth-Factor: backup_code", got)
	}
}
