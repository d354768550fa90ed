package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// checkSessions runs docs/sessions.md: its site with remember_device, a
// laptop and a remembered phone of alice, the operator's listing, and
// ending the phone's session by the id the listing shows.
func checkSessions(t *testing.T, s map[string]docSnippet) {
	l, h, _ := siteHost(t, s["sessions-site"].text, []string{"grafana.example.com"}, "127.0.0.1:3000")
	addUser(t, h, userAddCommand(t), "alice")
	laptop := l.browser(map[string]*labHost{"grafana.example.com": h}).at("https://grafana.example.com")
	secret := signInFirst(t, laptop, "alice")
	app := &authenticator{t: t, secret: secret, last: time.Now().Unix() / 30}

	phone := l.browser(map[string]*labHost{"grafana.example.com": h}).at("https://grafana.example.com")
	r := phone.api("POST", "login", map[string]string{"username": "alice", "password": docPassword})
	expect(t, "the phone's password", r, http.StatusOK)
	page := phone.do("GET", prefix+"/2fa", nil, "Accept", "text/html")
	if !strings.Contains(string(page.body), "Remember this device for 30 days") {
		t.Fatalf("the second factor does not offer to remember the phone:\n%s", page.body)
	}
	r = phone.do("POST", prefix+"/2fa", map[string]any{"code": app.code(), "remember": true}, "Accept", "application/json")
	expect(t, "the phone's code, remembered", r, http.StatusOK)
	if line := strings.Join(r.header.Values("Set-Cookie"), "\n"); !strings.Contains(line, "totp_auth_session_device=") || !strings.Contains(line, "Secure") {
		t.Errorf("the device cookie on HTTPS: %s", line)
	}
	_, others := sessionIDs(t, laptop)
	if len(others) != 1 {
		t.Fatalf("the laptop sees %d other sessions, want the phone's", len(others))
	}

	out := snippetShell(t, h, s["sessions-list"], "/", "")
	for _, want := range []string{others[0], "Remembered devices"} {
		if !strings.Contains(out, want) {
			t.Errorf("%s lists no %q:\n%s", s["sessions-list"], want, out)
		}
	}
	end := s["sessions-signout"]
	if !strings.Contains(end.text, "<id>") {
		t.Fatalf("%s has no <id> to fill in:\n%s", end, end.text)
	}
	end.text = strings.Replace(end.text, "<id>", others[0], 1)
	snippetShell(t, h, end, "/", "")
	refusedWithin(t, phone, time.Second, "the session the guide's signout --session ended")
	expect(t, "the laptop", laptop.do("GET", "/", nil, "Accept", "application/json"), http.StatusOK)
	r = phone.api("POST", "login", map[string]string{"username": "alice", "password": docPassword})
	if got := r.json(t)["status"]; got != "ok" {
		t.Errorf("the remembered phone's next sign-in: %v, want ok with the password alone", got)
	}
}
