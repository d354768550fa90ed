package gateway_test

import (
	"net/http"
	"net/url"
	"testing"
)

func TestRedirect_JSONAndBrowserGetTheSameSanitisedTarget(t *testing.T) {
	e := newEnv(t, optional2FA)
	for _, target := range []string{"/..//evil.example", "/a/./b/../..//evil.example?x=1"} {
		r := e.client().postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword, "redirect": target})
		api, _ := r.JSON["redirect"].(string)
		b := e.client()
		r = b.postForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}, "redirect": {target}})
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("browser sign-in: %d", r.StatusCode)
		}
		loc := r.Header.Get("Location")
		if api != loc || len(api) > 1 && api[1] == '/' || api == "" {
			t.Errorf("redirect %q: JSON says %q, browser goes to %q; want one same-site path", target, api, loc)
		}
	}
}

func TestRoutes_WrongMethodGetsAValidAllowHeader(t *testing.T) {
	e := newEnv(t)
	for path, want := range map[string]string{
		"/.totp-auth/logout":  "POST",
		"/.totp-auth/whoami":  "GET, HEAD",
		"/.totp-auth/login":   "GET, HEAD, POST",
		"/.totp-auth/disable": "POST",
	} {
		req, _ := http.NewRequest(http.MethodPut, e.srv.URL+path, nil)
		r := e.client().do(req)
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != want {
			t.Errorf("PUT %s: %d, Allow %q, want 405 with Allow %q", path, r.StatusCode, r.Header.Get("Allow"), want)
		}
	}
}
