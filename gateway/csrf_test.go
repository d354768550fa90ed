package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Cross-site request forgery (SPEC §4 rule 8).

func TestCSRF_FormWithoutValidTokenIsRefused(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.getHTML("/.totp-auth/login") // has a visitor cookie
	send := func(token, origin string) int {
		v := url.Values{"username": {"alice"}, "password": {testPassword}, "csrf": {token}}
		req, _ := http.NewRequest("POST", e.srv.URL+"/.totp-auth/login", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		return c.do(req).StatusCode
	}
	if s := send("", ""); s != 403 {
		t.Errorf("no token: %d", s)
	}
	if s := send("forged", ""); s != 403 {
		t.Errorf("forged token: %d", s)
	}
	other := e.client()
	token := formValue(t, other.getHTML("/.totp-auth/login").Body, "csrf")
	if s := send(token, ""); s != 403 {
		t.Errorf("another visitor's token: %d", s)
	}
	mine := formValue(t, c.getHTML("/.totp-auth/login").Body, "csrf")
	if s := send(mine, "https://evil.example"); s != 403 {
		t.Errorf("cross-origin form: %d", s)
	}
	if s := send(mine, e.srv.URL); s != http.StatusSeeOther {
		t.Errorf("own token, own origin: %d", s)
	}
}

func TestCSRF_CrossOriginJSONIsRefused(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.enroll("alice")
	req, _ := http.NewRequest("POST", e.srv.URL+"/.totp-auth/logout-all", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	if r := c.do(req); r.StatusCode != 403 {
		t.Fatalf("cross-origin JSON: %d", r.StatusCode)
	}
	if r := c.getJSON("/app"); r.StatusCode != 200 {
		t.Fatal("the refused request still signed the user out")
	}
	req, _ = http.NewRequest("POST", e.srv.URL+"/.totp-auth/logout-all", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "text/plain")
	if r := c.do(req); r.StatusCode != 415 {
		t.Fatalf("text/plain body: %d", r.StatusCode)
	}
}

func TestCSRF_OriginNullFromNoReferrerPagesIsDecidedByTheToken(t *testing.T) {
	// Pages sent with Referrer-Policy: no-referrer make browsers post forms
	// with "Origin: null"; the token must decide, not the null origin.
	e := newEnv(t)
	c := e.client()
	token := formValue(t, c.getHTML("/.totp-auth/login").Body, "csrf")
	send := func(ct, body, token string) int {
		req, _ := http.NewRequest("POST", e.srv.URL+"/.totp-auth/login", strings.NewReader(body+token))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Origin", "null")
		return c.do(req).StatusCode
	}
	form := "username=alice&password=" + url.QueryEscape(testPassword) + "&csrf="
	if s := send("application/x-www-form-urlencoded", form, token); s != http.StatusSeeOther {
		t.Errorf("form with a valid token and Origin null: %d, want 303", s)
	}
	if s := send("application/x-www-form-urlencoded", form, "forged"); s != http.StatusForbidden {
		t.Errorf("form with a forged token and Origin null: %d, want 403", s)
	}
	if s := send("application/json", `{"username":"alice","password":"`+testPassword+`"}`, ""); s != http.StatusForbidden {
		t.Errorf("JSON with Origin null: %d, want 403", s)
	}
}
