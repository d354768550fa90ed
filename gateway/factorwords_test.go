package gateway_test

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/internal/softkey"
)

// The pages name the second factors the user has: a user with passkeys and
// no authenticator app is never asked for a code from an app, and is told
// that a backup code works in place of the passkey.

// factorUser is alice, enrolled with the factors of one case, and a
// signed-in client of hers.
type factorUser struct {
	c      *client
	secret string // "" without TOTP
	key    *softkey.Authenticator
}

func enrollFactors(t *testing.T, e *env, totp, passkey bool) factorUser {
	t.Helper()
	u := factorUser{c: e.client()}
	switch {
	case totp:
		u.secret, _ = u.c.enroll("alice")
		if passkey {
			u.key = &softkey.Authenticator{}
			cred, _, err := u.key.Create(softkey.Ceremony{Origin: e.origin()}, u.c.options("/.totp-auth/passkeys/new", map[string]string{"password": testPassword}))
			if err != nil {
				t.Fatal(err)
			}
			if r := u.c.postRaw("/.totp-auth/passkeys", map[string]any{"name": "Phone", "credential": json.RawMessage(cred)}); r.StatusCode != 200 {
				t.Fatalf("add passkey: %d %s", r.StatusCode, r.Body)
			}
		}
	case passkey:
		u.key = &softkey.Authenticator{}
		u.c.enrollPasskey("alice", u.key)
	}
	return u
}

var scriptOrStyle = regexp.MustCompile(`(?s)<script>.*?</script>|<style>.*?</style>`)

// words is what a person reads of a page: its markup without the inline
// script and style, whose identifiers name passkeys on every page.
func words(page string) string { return scriptOrStyle.ReplaceAllString(page, "") }

// factorCases are the three kinds of user, and what every page must and
// must not say to them.
var factorCases = []struct {
	name          string
	totp, passkey bool
}{
	{"TOTP only", true, false},
	{"passkey only", false, true},
	{"both", true, true},
}

func checkWords(t *testing.T, what, page string, want, not []string) {
	t.Helper()
	page = words(page)
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("%s does not say %q:\n%s", what, w, page)
		}
	}
	for _, w := range not {
		if strings.Contains(page, w) {
			t.Errorf("%s says %q:\n%s", what, w, page)
		}
	}
}

func TestFactorWords_SecondFactorPage(t *testing.T) {
	want := map[string][]string{
		"TOTP only":    {"Enter the 6-digit code your authenticator app shows", `id="code"`, "Use a backup code instead"},
		"passkey only": {"Use your passkey to sign in as", "A backup code also works", `<details class="more backup" open>`, `id="backup-code"`},
		"both":         {"Use your passkey to sign in as", "Or enter a code from your authenticator app", "Enter the 6-digit code your authenticator app shows", `id="code"`},
	}
	not := map[string][]string{
		"TOTP only":    {"passkey", "Passkey"},
		"passkey only": {"6-digit", "authenticator app", `id="code"`},
		"both":         {"A backup code also works"},
	}
	for _, tc := range factorCases {
		t.Run(tc.name, func(t *testing.T) {
			e := passkeyEnv(t)
			enrollFactors(t, e, tc.totp, tc.passkey)
			c := e.client()
			c.login("alice", testPassword)
			checkWords(t, "the 2fa page", c.getHTML("/.totp-auth/2fa").Body, want[tc.name], not[tc.name])
			// A wrong code shows the page again, in the same words.
			r := c.postForm("/.totp-auth/2fa", "/.totp-auth/2fa", url.Values{"code": {"ZZZZ-ZZZZ"}})
			checkWords(t, "the 2fa page after a wrong code", r.Body, append(want[tc.name], "That code is not right."), not[tc.name])
		})
	}
}

func TestFactorWords_SecondFactorPageWherePasskeysCannotRun(t *testing.T) {
	e := passkeyEnv(t)
	enrollFactors(t, e, false, true)
	e.srv.URL = strings.Replace(e.srv.URL, "localhost", "127.0.0.1", 1)
	c := e.client()
	c.login("alice", testPassword)
	checkWords(t, "the 2fa page on plain http", c.getHTML("/.totp-auth/2fa").Body,
		[]string{"Passkeys work only over https (or on localhost)", "with one of your backup codes instead", `id="backup-code"`},
		[]string{"6-digit", "authenticator app", `data-passkey="get"`})
}

func TestFactorWords_AccountPage(t *testing.T) {
	want := map[string][]string{
		"TOTP only":    {"Enter a current code from your app to make one", `id="regen-code"`, "sets up an authenticator app again"},
		"passkey only": {"Confirm with your passkey to make one", `id="passkey-codes"`, "passkeys need JavaScript", "sets up a passkey or an authenticator app again"},
		"both":         {"Use your passkey, or enter a current code from your app, to make one", `id="passkey-codes"`, `id="regen-code"`},
	}
	not := map[string][]string{
		"TOTP only":    {`id="passkey-codes"`, "with your passkey"},
		"passkey only": {"code from your app", `id="regen-code"`},
		"both":         {"Confirm with your passkey to make one"},
	}
	for _, tc := range factorCases {
		t.Run(tc.name, func(t *testing.T) {
			e := passkeyEnv(t)
			u := enrollFactors(t, e, tc.totp, tc.passkey)
			checkWords(t, "the account page", u.c.getHTML("/.totp-auth/account").Body, want[tc.name], not[tc.name])
		})
	}
}

func TestFactorWords_BackupCodesPage(t *testing.T) {
	want := map[string][]string{
		"TOTP only":    {"Current code from your app", `id="code"`},
		"passkey only": {"Generate new backup codes with your passkey", "passkeys need JavaScript"},
		"both":         {"Generate new backup codes with your passkey", "Or enter a current code from your app", `id="code"`},
	}
	not := map[string][]string{
		"TOTP only":    {"passkey"},
		"passkey only": {"code from your app", `id="code"`},
		"both":         {"passkeys need JavaScript"},
	}
	for _, tc := range factorCases {
		t.Run(tc.name, func(t *testing.T) {
			e := passkeyEnv(t)
			u := enrollFactors(t, e, tc.totp, tc.passkey)
			checkWords(t, "the backup codes page", u.c.getHTML("/.totp-auth/backup-codes").Body, want[tc.name], not[tc.name])
		})
	}
}

func TestFactorWords_NewCodesPageAndFile(t *testing.T) {
	want := map[string]string{
		"TOTP only":    "in place of a code from your app.",
		"passkey only": "in place of your passkey.",
		"both":         "in place of your passkey or a code from your app.",
	}
	wantFile := map[string]string{
		"TOTP only":    "in place of a code from your authenticator app.",
		"passkey only": "in place of your passkey.",
		"both":         "in place of your passkey or a code from your authenticator app.",
	}
	for _, tc := range factorCases {
		t.Run(tc.name, func(t *testing.T) {
			e := passkeyEnv(t)
			u := enrollFactors(t, e, tc.totp, tc.passkey)
			var r response
			if tc.totp {
				e.clock.Advance(30 * time.Second)
				r, _ = u.c.sendForm("/.totp-auth/account", "/.totp-auth/backup-codes", url.Values{"code": {e.code(u.secret, 0)}})
			} else {
				form := formWithAction(t, u.c.getHTML("/.totp-auth/account").Body, "/.totp-auth/backup-codes")
				answer, err := u.key.Get(softkey.Ceremony{Origin: e.origin()}, []byte(htmlAttr(t, form, "data-options")))
				if err != nil {
					t.Fatal(err)
				}
				r = u.c.resend("/.totp-auth/backup-codes", url.Values{"credential": {string(answer)}, "csrf": {formValue(t, form, "csrf")}})
			}
			if r.StatusCode != 303 {
				t.Fatalf("regenerate: %d %s", r.StatusCode, r.Body)
			}
			checkWords(t, "the new codes page", u.c.getHTML("/.totp-auth/codes").Body, []string{want[tc.name]}, nil)
			checkWords(t, "the codes file", u.c.getHTML("/.totp-auth/codes.txt").Body, []string{wantFile[tc.name]}, nil)
		})
	}
}

func TestFactorWords_TwoFactorOffPage(t *testing.T) {
	want := map[string]string{
		"TOTP only":    "Your authenticator app and your backup codes no longer work here",
		"passkey only": "Your passkeys and your backup codes no longer work here",
		"both":         "Your authenticator app, your passkeys and your backup codes no longer work here",
	}
	for _, tc := range factorCases {
		t.Run(tc.name, func(t *testing.T) {
			e := passkeyEnv(t)
			u := enrollFactors(t, e, tc.totp, tc.passkey)
			var r response
			if tc.totp {
				e.clock.Advance(30 * time.Second)
				r, _ = u.c.sendForm("/.totp-auth/account", "/.totp-auth/disable", url.Values{"password": {testPassword}, "code": {e.code(u.secret, 0)}})
			} else {
				form := formWithAction(t, u.c.getHTML("/.totp-auth/account").Body, "/.totp-auth/disable")
				answer, err := u.key.Get(softkey.Ceremony{Origin: e.origin()}, []byte(htmlAttr(t, form, "data-options")))
				if err != nil {
					t.Fatal(err)
				}
				r = u.c.resend("/.totp-auth/disable", url.Values{"password": {testPassword}, "credential": {string(answer)}, "csrf": {formValue(t, form, "csrf")}})
			}
			if r.StatusCode != 303 {
				t.Fatalf("turn off: %d %s", r.StatusCode, r.Body)
			}
			not := []string{"sets up an app again"}
			if !tc.passkey {
				not = []string{"passkey"}
			}
			checkWords(t, "the page after turning 2FA off", u.c.getHTML(r.Header.Get("Location")).Body, []string{want[tc.name]}, not)
		})
	}
}
