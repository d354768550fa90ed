package e2e_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/totp-auth/totp_auth/internal/softkey"
)

// The snippets of docs/passkeys.md, run in the lab as the other pages'
// are: each site serves https under its names, a user is added as the
// README says, and a software authenticator (the browser's part) registers
// and uses a passkey at the origin the page names.

// passkeyDocChecks are the docChecks of docs/passkeys.md.
var passkeyDocChecks = []docCheck{
	{"passkeys as a second factor", []string{"passkeys"}, checkPasskeysSecondFactor},
	{"signing in with a passkey alone", []string{"passkey-login"}, checkPasskeyLogin},
	{"passkeys shared with cookie_domain", []string{"passkeys-cookie-domain"}, checkPasskeysCookieDomain},
}

// enrollPasskeyAt signs user in for the first time at c and enrolls a
// passkey of key made at origin.
func enrollPasskeyAt(t *testing.T, c *client, user, origin string, key *softkey.Authenticator) {
	t.Helper()
	r := c.api("POST", "login", map[string]string{"username": user, "password": docPassword})
	expect(t, "POST login", r, http.StatusOK)
	r = c.api("POST", "passkeys/new", map[string]string{})
	expect(t, "POST passkeys/new", r, http.StatusOK)
	cred, _, err := key.Create(softkey.Ceremony{Origin: origin}, r.body)
	if err != nil {
		t.Fatal(err)
	}
	r = c.api("POST", "passkeys", map[string]any{"name": "Laptop", "credential": json.RawMessage(cred)})
	expect(t, "POST passkeys", r, http.StatusOK)
}

func checkPasskeysSecondFactor(t *testing.T, s map[string]docSnippet) {
	l, h, _ := siteHost(t, s["passkeys"].text, []string{"app.example.com"}, "127.0.0.1:8080")
	addUser(t, h, userAddCommand(t), "alice")
	route := map[string]*labHost{"app.example.com": h}
	const origin = "https://app.example.com"
	key := &softkey.Authenticator{}
	enrollPasskeyAt(t, l.browser(route).at(origin), "alice", origin, key)

	c := l.browser(route).at(origin)
	r := c.api("POST", "login", map[string]string{"username": "alice", "password": docPassword})
	if got := r.json(t)["status"]; got != "2fa_required" {
		t.Fatalf("POST login after enrolling a passkey: %v", got)
	}
	r = c.api("POST", "2fa/options", map[string]string{})
	expect(t, "POST 2fa/options", r, http.StatusOK)
	answer, err := key.Get(softkey.Ceremony{Origin: origin}, r.body)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "POST 2fa with the passkey", c.api("POST", "2fa", map[string]any{"credential": json.RawMessage(answer)}), http.StatusOK)
	wantUser(t, upstreamGot(t, c, "/"), "alice", true)
	// Without passkey_login there is no sign-in with a passkey alone.
	expect(t, "POST login/options", l.browser(route).at(origin).api("POST", "login/options", map[string]string{}), http.StatusNotFound)
}

func checkPasskeyLogin(t *testing.T, s map[string]docSnippet) {
	l, h, _ := siteHost(t, s["passkey-login"].text, []string{"app.example.com"}, "127.0.0.1:8080")
	addUser(t, h, userAddCommand(t), "alice")
	route := map[string]*labHost{"app.example.com": h}
	const origin = "https://app.example.com"
	key := &softkey.Authenticator{}
	enrollPasskeyAt(t, l.browser(route).at(origin), "alice", origin, key)

	c := l.browser(route).at(origin)
	r := c.api("POST", "login/options", map[string]string{})
	expect(t, "POST login/options", r, http.StatusOK)
	answer, err := key.Get(softkey.Ceremony{Origin: origin, RPID: "app.example.com"}, r.body)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "POST login with the passkey alone", c.api("POST", "login", map[string]any{"credential": json.RawMessage(answer)}), http.StatusOK)
	wantUser(t, upstreamGot(t, c, "/"), "alice", true)
}

func checkPasskeysCookieDomain(t *testing.T, s map[string]docSnippet) {
	l, h, _ := siteHost(t, s["passkeys-cookie-domain"].text, []string{"app.example.com", "wiki.example.com"}, "127.0.0.1:8080")
	addUser(t, h, userAddCommand(t), "alice")
	route := map[string]*labHost{"app.example.com": h, "wiki.example.com": h}
	key := &softkey.Authenticator{}
	// Registered on app.example.com, the passkey belongs to example.com ...
	enrollPasskeyAt(t, l.browser(route).at("https://app.example.com"), "alice", "https://app.example.com", key)
	if got := key.Credentials()[0].RPID; got != "example.com" {
		t.Fatalf("the passkey belongs to %q, want example.com (the cookie_domain)", got)
	}
	// ... so it signs in alone on wiki.example.com too.
	c := l.browser(route).at("https://wiki.example.com")
	r := c.api("POST", "login/options", map[string]string{})
	expect(t, "POST login/options", r, http.StatusOK)
	answer, err := key.Get(softkey.Ceremony{Origin: "https://wiki.example.com", RPID: "example.com"}, r.body)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "POST login on wiki.example.com", c.api("POST", "login", map[string]any{"credential": json.RawMessage(answer)}), http.StatusOK)
	wantUser(t, upstreamGot(t, c, "/"), "alice", true)
}
