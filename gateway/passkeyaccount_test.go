package gateway_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/internal/softkey"
)

// A passkey as the fresh second factor of an account action: a new set of
// backup codes (POST backup-codes {credential}) for a user who has no
// TOTP, or beside it.

// userFailures is how many failures the lockout counted for user.
func (e *env) userFailures(user string) int {
	e.t.Helper()
	counters, err := e.store.Counters()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range counters {
		if c.Key == "user:"+user {
			return c.Failures
		}
	}
	return 0
}

// storedCodes is the stored set of user's backup codes, to tell whether a
// refused request replaced it.
func (e *env) storedCodes(user string) [][]byte {
	e.t.Helper()
	acct, err := e.store.Account(user)
	if err != nil {
		e.t.Fatal(err)
	}
	return acct.BackupCodes
}

// codesAnswer is key's answer to the options of a new set of backup codes.
func (c *client) codesAnswer(key *softkey.Authenticator, at softkey.Ceremony) []byte {
	c.e.t.Helper()
	if at.Origin == "" {
		at.Origin = c.e.origin()
	}
	answer, err := key.Get(at, c.options("/.totp-auth/backup-codes/options", nil))
	if err != nil {
		c.e.t.Fatal(err)
	}
	return answer
}

func codesOf(t *testing.T, r response) []string {
	t.Helper()
	list, _ := r.JSON["backup_codes"].([]any)
	var out []string
	for _, v := range list {
		out = append(out, v.(string))
	}
	if len(out) != 10 {
		t.Fatalf("want 10 backup codes: %d %s", r.StatusCode, r.Body)
	}
	return out
}

// backupCodeSignsIn reports whether code passes the second factor of a
// fresh sign-in of user.
func (e *env) backupCodeSignsIn(user, code string) bool {
	e.t.Helper()
	c := e.client()
	if r := c.login(user, testPassword); r.JSON["status"] != "2fa_required" {
		e.t.Fatalf("login: %d %s", r.StatusCode, r.Body)
	}
	return c.postJSON("/.totp-auth/2fa", map[string]string{"code": code}).StatusCode == http.StatusOK
}

func TestBackupCodes_PasskeyOnlyUserRegeneratesWithAPasskey(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	c := e.client()
	old := c.enrollPasskey("alice", key)
	if r := c.getJSON("/.totp-auth/backup-codes"); r.JSON["code_required"] != true {
		t.Fatalf("GET backup-codes: %s", r.Body)
	}
	// Without a fresh second factor, nothing is made.
	if r := c.postJSON("/.totp-auth/backup-codes", nil); r.StatusCode != 401 {
		t.Fatalf("no factor: %d %s", r.StatusCode, r.Body)
	}
	r := c.postAnswer("/.totp-auth/backup-codes", c.codesAnswer(key, softkey.Ceremony{}))
	if r.StatusCode != 200 {
		t.Fatalf("regenerate with a passkey: %d %s", r.StatusCode, r.Body)
	}
	fresh := codesOf(t, r)
	if e.logs.FilterMessage("totp_auth backup_codes_regenerated").FilterField(zapString("method", "passkey")).FilterField(zapString("outcome", "ok")).Len() != 1 {
		t.Error("the new set was not logged with method passkey")
	}
	if acct, _ := e.store.Account("alice"); acct.Passkeys[0].LastUsed.IsZero() || acct.Passkeys[0].SignCount < 1 {
		t.Errorf("the passkey's use was not recorded: %+v", acct.Passkeys[0])
	}
	if e.backupCodeSignsIn("alice", old[0]) {
		t.Error("an old backup code still signs in after a new set")
	}
	if !e.backupCodeSignsIn("alice", fresh[0]) {
		t.Error("a new backup code does not sign in")
	}
}

func TestBackupCodes_PasskeyAnswerRefusedAndCounted(t *testing.T) {
	tests := []struct {
		name string
		// answer returns the answer c sends, after whatever the case does.
		answer func(e *env, c *client, key *softkey.Authenticator) []byte
		reason string
	}{
		{"from another origin", func(e *env, c *client, key *softkey.Authenticator) []byte {
			return c.codesAnswer(key, softkey.Ceremony{Origin: "https://evil.example"})
		}, "wrong_site"},
		{"replayed", func(e *env, c *client, key *softkey.Authenticator) []byte {
			answer := c.codesAnswer(key, softkey.Ceremony{})
			// The thief holds the same cookies and sends the answer first.
			thief := e.client()
			u, _ := url.Parse(e.srv.URL)
			thief.jar.SetCookies(u, c.jar.Cookies(u))
			if r := thief.postAnswer("/.totp-auth/backup-codes", answer); r.StatusCode != 200 {
				e.t.Fatalf("first use: %d %s", r.StatusCode, r.Body)
			}
			return answer
		}, "challenge_reused"},
		{"expired", func(e *env, c *client, key *softkey.Authenticator) []byte {
			answer := c.codesAnswer(key, softkey.Ceremony{})
			e.clock.Advance(gateway.PendingTTL)
			return answer
		}, "ceremony_expired"},
		{"asked for by another session", func(e *env, c *client, key *softkey.Authenticator) []byte {
			other := e.client()
			if r := other.postAnswer("/.totp-auth/2fa", other.passkeyAnswer("alice", key, softkey.Ceremony{})); r.StatusCode != 200 {
				e.t.Fatalf("second session: %d %s", r.StatusCode, r.Body)
			}
			answer := other.codesAnswer(key, softkey.Ceremony{})
			u, _ := url.Parse(e.srv.URL)
			c.jar.SetCookies(u, []*http.Cookie{other.cookie(gateway.DefaultCookieName + "_passkey_codes")})
			return answer
		}, "ceremony_expired"},
		{"asked for to turn 2FA off", func(e *env, c *client, key *softkey.Authenticator) []byte {
			answer, err := key.Get(softkey.Ceremony{Origin: e.origin()}, c.options("/.totp-auth/disable/options", nil))
			if err != nil {
				e.t.Fatal(err)
			}
			// Its cookie, under the name of the one for backup codes.
			disable := c.cookie(gateway.DefaultCookieName + "_passkey_disable")
			u, _ := url.Parse(e.srv.URL)
			c.jar.SetCookies(u, []*http.Cookie{{Name: gateway.DefaultCookieName + "_passkey_codes", Value: disable.Value, Path: "/.totp-auth"}})
			return answer
		}, "ceremony_expired"},
		{"a cloned key's", func(e *env, c *client, key *softkey.Authenticator) []byte {
			other := e.client()
			if r := other.postAnswer("/.totp-auth/2fa", other.passkeyAnswer("alice", key, softkey.Ceremony{})); r.StatusCode != 200 {
				e.t.Fatalf("sign-in: %d %s", r.StatusCode, r.Body)
			}
			// The server saw counter 1; the clone counts from 0 to 1.
			clone := &softkey.Authenticator{}
			clone.Add(key.Credentials()[0].Clone(0))
			return c.codesAnswer(clone, softkey.Ceremony{})
		}, "counter_not_growing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := passkeyEnv(t)
			key := &softkey.Authenticator{}
			c := e.client()
			old := c.enrollPasskey("alice", key)
			before, set := e.userFailures("alice"), e.storedCodes("alice")
			r := c.postAnswer("/.totp-auth/backup-codes", tt.answer(e, c, key))
			if r.StatusCode != 401 || r.JSON["error"] != "invalid_passkey" {
				t.Fatalf("got %d %s, want 401 invalid_passkey", r.StatusCode, r.Body)
			}
			if e.userFailures("alice") != before+1 {
				t.Errorf("the refusal was not counted toward the lockout: %d failures, had %d", e.userFailures("alice"), before)
			}
			if tt.reason != "challenge_reused" && !slices.EqualFunc(set, e.storedCodes("alice"), bytes.Equal) {
				t.Error("a refused answer replaced the backup codes")
			}
			if e.logs.FilterMessage("totp_auth backup_codes_regenerated").FilterField(zapString("outcome", "failure")).FilterField(zapString("reason", tt.reason)).Len() != 1 {
				t.Errorf("no failure line with reason %s", tt.reason)
			}
			if tt.reason != "challenge_reused" && !e.backupCodeSignsIn("alice", old[0]) {
				t.Error("the old codes stopped working after a refusal")
			}
		})
	}
}

func TestBackupCodes_RefusedPasskeyAnswersLockTheUser(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	c := e.client()
	c.enrollPasskey("alice", key)
	for i := range gateway.DefaultMaxFailures {
		if r := c.postAnswer("/.totp-auth/backup-codes", c.codesAnswer(key, softkey.Ceremony{Origin: "https://evil.example"})); r.StatusCode != 401 {
			t.Fatalf("failure %d: %d %s", i+1, r.StatusCode, r.Body)
		}
	}
	if r := c.postAnswer("/.totp-auth/backup-codes", c.codesAnswer(key, softkey.Ceremony{})); r.StatusCode != 429 {
		t.Fatalf("a right answer while locked: %d %s, want 429", r.StatusCode, r.Body)
	}
}

func TestBackupCodes_TOTPUserStillRegeneratesWithACodeAndNotWithoutOne(t *testing.T) {
	e := passkeyEnv(t)
	c := e.client()
	secret, old := c.enroll("alice")
	if r := c.postJSON("/.totp-auth/backup-codes/options", nil); r.StatusCode != 404 || r.JSON["error"] != "no_passkeys" {
		t.Fatalf("options for a user without passkeys: %d %s", r.StatusCode, r.Body)
	}
	// A passkey answer without a ceremony of this session is refused and
	// counted, as any wrong second factor.
	before := e.userFailures("alice")
	if r := c.postRaw("/.totp-auth/backup-codes", map[string]any{"credential": json.RawMessage(`{"id":"AAAA","type":"public-key"}`)}); r.StatusCode != 401 || e.userFailures("alice") != before+1 {
		t.Fatalf("a passkey answer for a user without passkeys: %d %s", r.StatusCode, r.Body)
	}
	if r := c.postJSON("/.totp-auth/backup-codes", map[string]string{"code": "000000"}); r.StatusCode != 401 || r.JSON["error"] != "invalid_code" {
		t.Fatalf("a wrong code: %d %s", r.StatusCode, r.Body)
	}
	e.clock.Advance(30 * time.Second)
	r := c.postJSON("/.totp-auth/backup-codes", map[string]string{"code": e.code(secret, 0)})
	if r.StatusCode != 200 {
		t.Fatalf("regenerate with a code: %d %s", r.StatusCode, r.Body)
	}
	codesOf(t, r)
	if e.backupCodeSignsIn("alice", old[0]) {
		t.Error("an old backup code still signs in")
	}
}

func TestBackupCodes_UserWithBothFactorsRegeneratesWithEither(t *testing.T) {
	e := passkeyEnv(t)
	c := e.client()
	secret, _ := c.enroll("alice")
	key := &softkey.Authenticator{}
	cred, _, err := key.Create(softkey.Ceremony{Origin: e.origin()}, c.options("/.totp-auth/passkeys/new", map[string]string{"password": testPassword}))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.postRaw("/.totp-auth/passkeys", map[string]any{"name": "Phone", "credential": json.RawMessage(cred)}); r.StatusCode != 200 {
		t.Fatalf("add passkey: %d %s", r.StatusCode, r.Body)
	}
	if r := c.postAnswer("/.totp-auth/backup-codes", c.codesAnswer(key, softkey.Ceremony{})); r.StatusCode != 200 {
		t.Fatalf("with the passkey: %d %s", r.StatusCode, r.Body)
	}
	e.clock.Advance(30 * time.Second)
	if r := c.postJSON("/.totp-auth/backup-codes", map[string]string{"code": e.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("with a code: %d %s", r.StatusCode, r.Body)
	}
}

func TestBackupCodes_PasskeyAnswerPostedFromTheAccountPage(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	c := e.client()
	old := c.enrollPasskey("alice", key)
	page := c.getHTML("/.totp-auth/account")
	form := formWithAction(t, page.Body, "/.totp-auth/backup-codes")
	if !strings.Contains(form, `data-passkey="get"`) {
		t.Fatalf("the account page offers no passkey for new backup codes:\n%s", page.Body)
	}
	answer, err := key.Get(softkey.Ceremony{Origin: e.origin()}, []byte(htmlAttr(t, form, "data-options")))
	if err != nil {
		t.Fatal(err)
	}
	vals := url.Values{"credential": {string(answer)}, "csrf": {formValue(t, form, "csrf")}, "form_token": {formValue(t, form, "form_token")}}
	r := c.resend("/.totp-auth/backup-codes", vals)
	if r.StatusCode != 303 || r.Header.Get("Location") != "/.totp-auth/codes" {
		t.Fatalf("form post: %d %s %s", r.StatusCode, r.Header.Get("Location"), r.Body)
	}
	if shown := c.getHTML("/.totp-auth/codes"); strings.Count(shown.Body, "<li>") != 10 {
		t.Fatalf("the codes page shows no new set:\n%s", shown.Body)
	}
	if e.backupCodeSignsIn("alice", old[0]) {
		t.Error("an old backup code still signs in")
	}
}

// formWithAction returns the first form of page that posts to action.
func formWithAction(t *testing.T, page, action string) string {
	t.Helper()
	for _, part := range strings.Split(page, "<form")[1:] {
		form := part[:strings.Index(part, "</form>")]
		if strings.Contains(form[:strings.IndexByte(form, '>')], `action="`+action+`"`) {
			return form
		}
	}
	t.Fatalf("no form posts to %s:\n%s", action, page)
	return ""
}

func TestOwnPassword_PasskeyOnlyUserChangesItWithAPasskey(t *testing.T) {
	e := passkeyEnv(t)
	databaseUser(e, "dave")
	key := &softkey.Authenticator{}
	c := e.client()
	c.enrollPasskey("dave", key)
	change := func(answer []byte) response {
		return c.postRaw("/.totp-auth/password", map[string]any{"current": testPassword, "new": newPassword, "credential": json.RawMessage(answer)})
	}
	page := words(c.getHTML("/.totp-auth/account").Body)
	if !strings.Contains(page, "Change password with your passkey") || strings.Contains(page, "code from your app") {
		t.Fatalf("the account page of a passkey-only database user:\n%s", page)
	}
	if r := c.postJSON("/.totp-auth/password", map[string]string{"current": testPassword, "new": newPassword}); r.StatusCode != 401 {
		t.Fatalf("without a second factor: %d %s", r.StatusCode, r.Body)
	}
	passwordAnswer := func(origin string) []byte {
		answer, err := key.Get(softkey.Ceremony{Origin: origin}, c.options("/.totp-auth/password/options", nil))
		if err != nil {
			t.Fatal(err)
		}
		return answer
	}
	before := e.userFailures("dave")
	if r := change(passwordAnswer("https://evil.example")); r.StatusCode != 401 || r.JSON["error"] != "invalid_credentials" {
		t.Fatalf("an answer from another origin: %d %s", r.StatusCode, r.Body)
	}
	// An answer to the ceremony of new backup codes is not one for a
	// new password.
	if r := change(c.codesAnswer(key, softkey.Ceremony{})); r.StatusCode != 401 {
		t.Fatalf("an answer asked for new backup codes: %d %s", r.StatusCode, r.Body)
	}
	if got := e.userFailures("dave"); got != before+2 {
		t.Errorf("refused answers counted %d failures, want %d", got, before+2)
	}
	answer := passwordAnswer(e.origin())
	if r := change(answer); r.StatusCode != 200 || r.JSON["status"] != "ok" {
		t.Fatalf("change with the passkey: %d %s", r.StatusCode, r.Body)
	}
	if r := e.client().login("dave", newPassword); r.JSON["status"] != "2fa_required" {
		t.Fatalf("the new password: %d %s", r.StatusCode, r.Body)
	}
	// The same answer is not taken twice.
	if r := c.postRaw("/.totp-auth/password", map[string]any{"current": newPassword, "new": "another fine passphrase", "credential": json.RawMessage(answer)}); r.StatusCode != 401 {
		t.Fatalf("a replayed answer: %d %s", r.StatusCode, r.Body)
	}
}

func TestBackupCodes_AfterABackupCodeSignInAnotherSessionRegeneratesWithAPasskey(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	old := e.client().enrollPasskey("alice", key)
	// A sign-in spends a backup code: until a new set is made, every
	// session is held at backup-codes, and a later one needs a second
	// factor to make it.
	spender := e.client()
	spender.login("alice", testPassword)
	if r := spender.postJSON("/.totp-auth/2fa", map[string]string{"code": old[0]}); r.StatusCode != 200 {
		t.Fatalf("backup code: %d %s", r.StatusCode, r.Body)
	}
	c := e.client()
	if r := c.postAnswer("/.totp-auth/2fa", c.passkeyAnswer("alice", key, softkey.Ceremony{})); r.StatusCode != 200 {
		t.Fatalf("a later sign-in: %d %s", r.StatusCode, r.Body)
	}
	if c.signedIn() {
		t.Fatal("control: a session while a new set is due passes the gate")
	}
	if r := c.getJSON("/.totp-auth/backup-codes"); r.JSON["regenerate_required"] != true || r.JSON["code_required"] != true {
		t.Fatalf("GET backup-codes: %s", r.Body)
	}
	page := words(c.getHTML("/.totp-auth/backup-codes").Body)
	if !strings.Contains(page, "Make a fresh set, with your passkey, before you go on") || !strings.Contains(page, `data-passkey="get"`) || strings.Contains(page, "code from your app") {
		t.Fatalf("the backup codes page of a passkey-only user in recovery:\n%s", page)
	}
	r := c.postAnswer("/.totp-auth/backup-codes", c.codesAnswer(key, softkey.Ceremony{}))
	if r.StatusCode != 200 {
		t.Fatalf("regenerate with a passkey in recovery: %d %s", r.StatusCode, r.Body)
	}
	codesOf(t, r)
	if !c.signedIn() {
		t.Error("the session is still held at backup-codes after a new set")
	}
}
