package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/pquerna/otp/totp"
)

// signIn goes through the JSON API once as a real client would: password,
// then enrollment (first sign-in of a fresh database) or the second factor,
// with codes computed by pquerna/otp. It returns the session cookie's value.
func signIn(base, prefix, cookieName, user, password string) (string, error) {
	c := &authClient{
		http:    &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		base:    base + prefix,
		cookies: map[string]string{},
	}
	var login struct{ Status string }
	if err := c.call("POST", "/login", map[string]string{"username": user, "password": password}, &login); err != nil {
		return "", err
	}
	switch login.Status {
	case "enroll_required":
		var setup struct{ Secret string }
		if err := c.call("GET", "/setup", nil, &setup); err != nil {
			return "", err
		}
		if setup.Secret == "" {
			return "", fmt.Errorf("GET %s/setup: no secret in the answer", prefix)
		}
		code, err := totp.GenerateCode(setup.Secret, time.Now())
		if err != nil {
			return "", fmt.Errorf("compute a TOTP code: %w", err)
		}
		var done struct{ Status string }
		if err := c.call("POST", "/setup", map[string]string{"code": code}, &done); err != nil {
			return "", err
		}
	case "2fa_required":
		return "", fmt.Errorf("user %q is already enrolled in this database: the bench needs a fresh db_path", user)
	case "ok":
	default:
		return "", fmt.Errorf("POST %s/login: unexpected status %q", prefix, login.Status)
	}
	v := c.cookies[cookieName]
	if v == "" {
		return "", fmt.Errorf("signed in, but no %s cookie was set", cookieName)
	}
	return v, nil
}

// makeAppPassword makes an app password for the signed-in session on the
// app_passwords site at base and returns its value.
func makeAppPassword(base, prefix, cookieName, session, password string) (string, error) {
	c := &authClient{
		http:    &http.Client{Timeout: 30 * time.Second},
		base:    base + prefix,
		cookies: map[string]string{cookieName: session},
	}
	var made struct {
		AppPassword string `json:"app_password"`
	}
	if err := c.call("POST", "/app-passwords", map[string]string{"password": password, "name": "bench"}, &made); err != nil {
		return "", err
	}
	if made.AppPassword == "" {
		return "", fmt.Errorf("POST %s/app-passwords: no app_password in the answer", prefix)
	}
	return made.AppPassword, nil
}

// authClient speaks the JSON API and keeps the cookies it is given.
type authClient struct {
	http    *http.Client
	base    string
	cookies map[string]string
}

func (c *authClient) call(method, path string, in any, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for name, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: name, Value: v})
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	for _, ck := range resp.Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: answer is not the expected JSON: %w", method, path, err)
	}
	return nil
}
