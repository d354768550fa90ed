package gateway_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/softkey"
)

// Passkeys (SPEC §14), driven through real go-webauthn ceremonies by the
// software authenticator of internal/softkey.

// passkeyEnv is a gateway with passkeys on, served on http://localhost
// (a secure context), the one plain-http host passkeys work on.
func passkeyEnv(t testing.TB, mods ...func(*gateway.Config)) *env {
	t.Helper()
	e := newEnv(t, append([]func(*gateway.Config){func(c *gateway.Config) { c.Passkeys = true }}, mods...)...)
	e.srv.URL = strings.Replace(e.srv.URL, "127.0.0.1", "localhost", 1)
	return e
}

// origin is where the env's pages are, as a browser names it.
func (e *env) origin() string { return e.srv.URL }

// postRaw posts a JSON body as an API client.
func (c *client) postRaw(path string, body any) response {
	c.e.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", c.e.srv.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return c.do(req)
}

// options posts to an options endpoint and returns the options JSON.
func (c *client) options(path string, body map[string]string) []byte {
	c.e.t.Helper()
	r := c.postJSON(path, body)
	if r.StatusCode != 200 {
		c.e.t.Fatalf("%s: %d %s", path, r.StatusCode, r.Body)
	}
	return []byte(r.Body)
}

// enrollPasskey signs user in for the first time and enrolls key as the
// first second factor; it returns the backup codes.
func (c *client) enrollPasskey(user string, key *softkey.Authenticator) []string {
	t := c.e.t
	t.Helper()
	r := c.postJSON("/.totp-auth/login", map[string]string{"username": user, "password": testPassword})
	if r.JSON["status"] != "enroll_required" {
		t.Fatalf("login: %d %s", r.StatusCode, r.Body)
	}
	cred, _, err := key.Create(softkey.Ceremony{Origin: c.e.origin()}, c.options("/.totp-auth/passkeys/new", nil))
	if err != nil {
		t.Fatal(err)
	}
	r = c.postRaw("/.totp-auth/passkeys", map[string]any{"name": "Laptop", "credential": json.RawMessage(cred)})
	if r.StatusCode != 200 || r.JSON["status"] != "ok" || r.JSON["id"] == "" {
		t.Fatalf("register passkey: %d %s", r.StatusCode, r.Body)
	}
	var codes []string
	for _, v := range r.JSON["backup_codes"].([]any) {
		codes = append(codes, v.(string))
	}
	if len(codes) != 10 {
		t.Fatalf("got %d backup codes, want 10", len(codes))
	}
	return codes
}

// passkeyAnswer starts a sign-in of user with the password and returns the
// passkey's answer to the 2fa options.
func (c *client) passkeyAnswer(user string, key *softkey.Authenticator, at softkey.Ceremony) []byte {
	t := c.e.t
	t.Helper()
	r := c.postJSON("/.totp-auth/login", map[string]string{"username": user, "password": testPassword})
	if r.JSON["status"] != "2fa_required" {
		t.Fatalf("login: %d %s", r.StatusCode, r.Body)
	}
	if at.Origin == "" {
		at.Origin = c.e.origin()
	}
	answer, err := key.Get(at, c.options("/.totp-auth/2fa/options", nil))
	if err != nil {
		t.Fatal(err)
	}
	return answer
}

func (c *client) postAnswer(path string, answer []byte) response {
	return c.postRaw(path, map[string]any{"credential": json.RawMessage(answer)})
}

// signedIn reports whether the client's session passes the gate.
// signedIn reports whether c's session passes the gate to the upstream.
func (c *client) signedIn() bool {
	c.e.t.Helper()
	return c.getJSON("/app").StatusCode == http.StatusOK
}

func (e *env) logged(reason string) bool {
	return e.logs.FilterField(zapString("reason", reason)).Len() > 0
}

func TestPasskey_EnrollAtFirstSignInThenSignInWithIt(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{Packed: true}
	c := e.client()
	c.enrollPasskey("alice", key)
	if !c.signedIn() {
		t.Fatal("enrolling a passkey at first sign-in did not start the session")
	}
	r := c.getJSON("/.totp-auth/passkeys")
	list := r.JSON["passkeys"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["name"] != "Laptop" {
		t.Fatalf("passkeys: %s", r.Body)
	}

	c2 := e.client()
	r = c2.postAnswer("/.totp-auth/2fa", c2.passkeyAnswer("alice", key, softkey.Ceremony{}))
	if r.StatusCode != 200 || r.JSON["status"] != "ok" {
		t.Fatalf("2fa with passkey: %d %s", r.StatusCode, r.Body)
	}
	if !c2.signedIn() {
		t.Fatal("no session after a passkey second factor")
	}
	if e.logs.FilterMessage("totp_auth sign_in").FilterField(zapString("method", "passkey")).Len() == 0 {
		t.Error("the sign-in was not logged with method passkey")
	}
	if r := c2.getHTML("/app"); r.StatusCode != 200 || !strings.Contains(r.Body, "user=alice") {
		t.Fatalf("a passkey session did not pass a block that requires 2FA: %d", r.StatusCode)
	}
}

func TestPasskey_AnswerReplayedIsRefused(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{NoCounter: true} // the challenge alone must refuse it
	e.client().enrollPasskey("alice", key)
	c := e.client()
	answer := c.passkeyAnswer("alice", key, softkey.Ceremony{})
	// The attacker holds the same cookies and the same answer.
	thief := e.client()
	u, _ := url.Parse(e.srv.URL)
	thief.jar.SetCookies(u, c.jar.Cookies(u))
	if r := c.postAnswer("/.totp-auth/2fa", answer); r.StatusCode != 200 {
		t.Fatalf("first answer: %d %s", r.StatusCode, r.Body)
	}
	r := thief.postAnswer("/.totp-auth/2fa", answer)
	if r.StatusCode == 200 || thief.signedIn() {
		t.Fatalf("a replayed answer was accepted: %d %s", r.StatusCode, r.Body)
	}
}

func TestPasskey_ConcurrentSecondUseOfOneAnswerAcceptedOnce(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{NoCounter: true} // the counter must not be what saves us
	e.client().enrollPasskey("alice", key)
	first := e.client()
	answer := first.passkeyAnswer("alice", key, softkey.Ceremony{})
	u, _ := url.Parse(e.srv.URL)
	clients := []*client{first}
	for range 7 {
		c := e.client()
		c.jar.SetCookies(u, first.jar.Cookies(u))
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	codes := make([]int, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = c.postAnswer("/.totp-auth/2fa", answer).StatusCode
		}()
	}
	wg.Wait()
	ok := 0
	for _, code := range codes {
		if code == 200 {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent uses of one answer were accepted (%v), want exactly 1", ok, len(codes), codes)
	}
}

func TestPasskey_ClonedCredentialWithLowerCounterRefused(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	e.client().enrollPasskey("alice", key)
	for range 3 {
		c := e.client()
		if r := c.postAnswer("/.totp-auth/2fa", c.passkeyAnswer("alice", key, softkey.Ceremony{})); r.StatusCode != 200 {
			t.Fatalf("sign-in: %d %s", r.StatusCode, r.Body)
		}
	}
	// The server saw counter 3; the clone still counts from 1.
	clone := &softkey.Authenticator{}
	clone.Add(key.Credentials()[0].Clone(1))
	c := e.client()
	r := c.postAnswer("/.totp-auth/2fa", c.passkeyAnswer("alice", clone, softkey.Ceremony{}))
	if r.StatusCode != 401 || r.JSON["error"] != "invalid_passkey" {
		t.Fatalf("clone: %d %s, want 401 invalid_passkey", r.StatusCode, r.Body)
	}
	if !e.logged("counter_not_growing") {
		t.Error("the refused clone was not logged")
	}
	// The owner's authenticator, ahead of the clone, still works.
	c = e.client()
	if r := c.postAnswer("/.totp-auth/2fa", c.passkeyAnswer("alice", key, softkey.Ceremony{})); r.StatusCode != 200 {
		t.Fatalf("the owner's passkey after a refused clone: %d %s", r.StatusCode, r.Body)
	}
}

func TestPasskey_SyncedPasskeyWithZeroCounterAndBackupFlagsWorks(t *testing.T) {
	e := passkeyEnv(t)
	// A synced passkey: backup eligible, not yet backed up at
	// registration, backed up later, never counting.
	key := &softkey.Authenticator{BackupEligible: true, NoCounter: true}
	e.client().enrollPasskey("alice", key)
	key.BackedUp = true
	for i := range 3 {
		c := e.client()
		if r := c.postAnswer("/.totp-auth/2fa", c.passkeyAnswer("alice", key, softkey.Ceremony{})); r.StatusCode != 200 {
			t.Fatalf("sign-in %d of a synced passkey: %d %s", i+1, r.StatusCode, r.Body)
		}
	}
	acct, err := e.store.Account("alice")
	if err != nil {
		t.Fatal(err)
	}
	if p := acct.Passkeys[0]; !p.BackupEligible || !p.BackupState || p.SignCount != 0 || p.LastUsed.IsZero() {
		t.Fatalf("stored passkey: %+v", p)
	}
}

func TestPasskey_AnswerFromAnotherOriginRefused(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	e.client().enrollPasskey("alice", key)
	c := e.client()
	answer := c.passkeyAnswer("alice", key, softkey.Ceremony{Origin: "https://evil.example"})
	if r := c.postAnswer("/.totp-auth/2fa", answer); r.StatusCode != 401 || c.signedIn() {
		t.Fatalf("an answer made at another origin: %d %s", r.StatusCode, r.Body)
	}
	if !e.logged("wrong_site") {
		t.Error("the origin mismatch was not logged as wrong_site")
	}
}

func TestPasskey_AnswerForAnotherRPIDRefused(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	e.client().enrollPasskey("alice", key)
	// A phishing site's RP ID: the authenticator signs for its own hash.
	key.Credentials()[0].RPID = "evil.example"
	c := e.client()
	answer := c.passkeyAnswer("alice", key, softkey.Ceremony{RPID: "evil.example"})
	if r := c.postAnswer("/.totp-auth/2fa", answer); r.StatusCode != 401 || c.signedIn() {
		t.Fatalf("an answer for another RP ID: %d %s", r.StatusCode, r.Body)
	}
}

func TestPasskey_CeremonyBoundToThePendingSignInThatAskedForIt(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	e.client().enrollPasskey("alice", key)
	victim := e.client()
	answer := victim.passkeyAnswer("alice", key, softkey.Ceremony{})
	// Another sign-in of the same user takes the victim's ceremony cookie
	// and answer, with a pending cookie of its own.
	other := e.client()
	other.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword})
	u, _ := url.Parse(e.srv.URL)
	other.jar.SetCookies(u, []*http.Cookie{victim.cookie(gateway.DefaultCookieName + "_passkey")})
	if r := other.postAnswer("/.totp-auth/2fa", answer); r.StatusCode != 401 || other.signedIn() {
		t.Fatalf("a ceremony of another pending sign-in was accepted: %d %s", r.StatusCode, r.Body)
	}
}

func TestPasskey_CeremonyExpiresWithThePendingSignIn(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	e.client().enrollPasskey("alice", key)
	c := e.client()
	answer := c.passkeyAnswer("alice", key, softkey.Ceremony{})
	e.clock.Advance(gateway.PendingTTL)
	if r := c.postAnswer("/.totp-auth/2fa", answer); r.StatusCode != 401 || c.signedIn() {
		t.Fatalf("an answer after the pending sign-in expired: %d %s", r.StatusCode, r.Body)
	}
}

func TestPasskey_FailedAnswersCountTowardLockout(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	e.client().enrollPasskey("alice", key)
	// A right answer, made before the lock.
	c := e.client()
	answer := c.passkeyAnswer("alice", key, softkey.Ceremony{})
	for i := range gateway.DefaultMaxFailures {
		c := e.client()
		answer := c.passkeyAnswer("alice", key, softkey.Ceremony{Origin: "https://evil.example"})
		if r := c.postAnswer("/.totp-auth/2fa", answer); r.StatusCode != 401 {
			t.Fatalf("failure %d: %d %s", i+1, r.StatusCode, r.Body)
		}
	}
	if r := c.postAnswer("/.totp-auth/2fa", answer); r.StatusCode != 429 {
		t.Fatalf("a right answer while locked: %d %s, want 429", r.StatusCode, r.Body)
	}
}

func TestPasskey_AddingOneWhenSignedInAsksThePasswordFirst(t *testing.T) {
	e := passkeyEnv(t)
	c := e.client()
	secret, _ := c.enroll("alice")
	if r := c.postJSON("/.totp-auth/passkeys/new", nil); r.StatusCode != 403 || r.JSON["error"] != "password_required" {
		t.Fatalf("options without the password: %d %s", r.StatusCode, r.Body)
	}
	if r := c.postJSON("/.totp-auth/passkeys/new", map[string]string{"password": "wrong"}); r.StatusCode != 401 || r.JSON["error"] != "invalid_credentials" {
		t.Fatalf("options with a wrong password: %d %s", r.StatusCode, r.Body)
	}
	counters, _ := e.store.Counters()
	if counted := len(counters) > 0 && counters[0].Failures > 0; !counted {
		t.Errorf("a wrong password when adding a passkey did not count: %+v", counters)
	}
	key := &softkey.Authenticator{}
	cred, _, err := key.Create(softkey.Ceremony{Origin: e.origin()}, c.options("/.totp-auth/passkeys/new", map[string]string{"password": testPassword}))
	if err != nil {
		t.Fatal(err)
	}
	r := c.postRaw("/.totp-auth/passkeys", map[string]any{"name": "YubiKey", "credential": json.RawMessage(cred)})
	if r.StatusCode != 200 || r.JSON["backup_codes"] != nil {
		t.Fatalf("add passkey beside TOTP: %d %s", r.StatusCode, r.Body)
	}
	// Both factors work.
	c2 := e.client()
	if r := c2.postAnswer("/.totp-auth/2fa", c2.passkeyAnswer("alice", key, softkey.Ceremony{})); r.StatusCode != 200 {
		t.Fatalf("passkey beside TOTP: %d %s", r.StatusCode, r.Body)
	}
	e.client().signIn("alice", secret)
}

func TestPasskey_RegistrationAnswerFromAnotherOriginRefused(t *testing.T) {
	e := passkeyEnv(t)
	c := e.client()
	c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword})
	key := &softkey.Authenticator{}
	cred, _, err := key.Create(softkey.Ceremony{Origin: "https://evil.example"}, c.options("/.totp-auth/passkeys/new", nil))
	if err != nil {
		t.Fatal(err)
	}
	r := c.postRaw("/.totp-auth/passkeys", map[string]any{"credential": json.RawMessage(cred)})
	if r.StatusCode != 400 || r.JSON["error"] != "invalid_passkey" {
		t.Fatalf("registration from another origin: %d %s", r.StatusCode, r.Body)
	}
	if acct, _ := e.store.Account("alice"); len(acct.Passkeys) != 0 {
		t.Fatal("a passkey was stored")
	}
}

func TestPasskey_RemovingTheLastFactorRefusedWhere2FAIsRequired(t *testing.T) {
	e := passkeyEnv(t)
	c := e.client()
	c.enrollPasskey("alice", &softkey.Authenticator{})
	id := c.getJSON("/.totp-auth/passkeys").JSON["passkeys"].([]any)[0].(map[string]any)["id"].(string)
	if r := c.postJSON("/.totp-auth/passkeys/remove", map[string]string{"id": id, "password": "wrong"}); r.StatusCode != 401 {
		t.Fatalf("remove with a wrong password: %d %s", r.StatusCode, r.Body)
	}
	if r := c.postJSON("/.totp-auth/passkeys/remove", map[string]string{"id": id, "password": testPassword}); r.StatusCode != 409 || r.JSON["error"] != "last_factor" {
		t.Fatalf("remove the last factor: %d %s, want 409 last_factor", r.StatusCode, r.Body)
	}
	// With a second passkey the first may go.
	key := &softkey.Authenticator{}
	cred, _, _ := key.Create(softkey.Ceremony{Origin: e.origin()}, c.options("/.totp-auth/passkeys/new", map[string]string{"password": testPassword}))
	if r := c.postRaw("/.totp-auth/passkeys", map[string]any{"name": "Phone", "credential": json.RawMessage(cred)}); r.StatusCode != 200 {
		t.Fatalf("add: %d %s", r.StatusCode, r.Body)
	}
	if r := c.postJSON("/.totp-auth/passkeys/rename", map[string]string{"id": id, "name": "Old laptop"}); r.StatusCode != 200 {
		t.Fatalf("rename: %d %s", r.StatusCode, r.Body)
	}
	if r := c.postJSON("/.totp-auth/passkeys/remove", map[string]string{"id": id, "password": testPassword}); r.StatusCode != 200 {
		t.Fatalf("remove one of two: %d %s", r.StatusCode, r.Body)
	}
	list := c.getJSON("/.totp-auth/passkeys").JSON["passkeys"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["name"] != "Phone" {
		t.Fatalf("after removal: %v", list)
	}
}

func TestPasskey_DisableWithPasswordAndPasskeyRemovesThem(t *testing.T) {
	e := passkeyEnv(t, func(c *gateway.Config) { c.Optional2FA = true })
	c := e.client()
	if r := c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword}); r.JSON["status"] != "ok" {
		t.Fatalf("login: %s", r.Body)
	}
	key := &softkey.Authenticator{}
	cred, _, _ := key.Create(softkey.Ceremony{Origin: e.origin()}, c.options("/.totp-auth/passkeys/new", map[string]string{"password": testPassword}))
	r := c.postRaw("/.totp-auth/passkeys", map[string]any{"credential": json.RawMessage(cred)})
	if r.StatusCode != 200 || len(r.JSON["backup_codes"].([]any)) != 10 {
		t.Fatalf("first passkey from a password-only session: %d %s", r.StatusCode, r.Body)
	}
	answer, err := key.Get(softkey.Ceremony{Origin: e.origin()}, c.options("/.totp-auth/disable/options", nil))
	if err != nil {
		t.Fatal(err)
	}
	r = c.postRaw("/.totp-auth/disable", map[string]any{"password": testPassword, "credential": json.RawMessage(answer)})
	if r.StatusCode != 200 {
		t.Fatalf("disable: %d %s", r.StatusCode, r.Body)
	}
	if acct, _ := e.store.Account("alice"); len(acct.Passkeys) != 0 || len(acct.BackupCodes) != 0 {
		t.Fatalf("disable left passkeys or codes: %+v", acct.Passkeys)
	}
}

func TestPasskeyLogin_RequiresUserVerification(t *testing.T) {
	e := passkeyEnv(t, func(c *gateway.Config) { c.PasskeyLogin = true })
	key := &softkey.Authenticator{}
	e.client().enrollPasskey("alice", key)
	key.NoUserVerification = true
	c := e.client()
	answer, err := key.Get(softkey.Ceremony{Origin: e.origin(), RPID: "localhost"}, c.options("/.totp-auth/login/options", nil))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.postAnswer("/.totp-auth/login", answer); r.StatusCode != 401 || r.JSON["error"] != "invalid_passkey" || c.signedIn() {
		t.Fatalf("a passkey sign-in without user verification: %d %s", r.StatusCode, r.Body)
	}
	if !e.logged("not_verified") {
		t.Error("the missing user verification was not logged")
	}
	key.NoUserVerification = false
	c = e.client()
	answer, _ = key.Get(softkey.Ceremony{Origin: e.origin(), RPID: "localhost"}, c.options("/.totp-auth/login/options", nil))
	r := c.postRaw("/.totp-auth/login", map[string]any{"credential": json.RawMessage(answer), "redirect": "/app"})
	if r.StatusCode != 200 || r.JSON["status"] != "ok" || r.JSON["redirect"] != "/app" {
		t.Fatalf("a passkey sign-in with user verification: %d %s", r.StatusCode, r.Body)
	}
	if r := c.getHTML("/app"); r.StatusCode != 200 || !strings.Contains(r.Body, "user=alice") {
		t.Fatalf("a passkey-only session did not pass a block that requires 2FA: %d", r.StatusCode)
	}
}

func TestPasskeyLogin_OffAnswers404(t *testing.T) {
	e := passkeyEnv(t)
	if r := e.client().postJSON("/.totp-auth/login/options", nil); r.StatusCode != 404 || r.JSON["error"] != "passkeys_off" {
		t.Fatalf("login/options without passkey_login: %d %s", r.StatusCode, r.Body)
	}
}

func TestPasskey_PagesOfferThemOnlyInASecureContext(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	e.client().enrollPasskey("alice", key)
	c := e.client()
	c.postForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	page := c.getHTML("/.totp-auth/2fa")
	if !strings.Contains(page.Body, `data-passkey="get"`) || !strings.Contains(page.Body, "&#34;challenge&#34;") {
		t.Fatalf("the 2fa page on localhost offers no passkey with its options:\n%s", page.Body)
	}
	if !strings.Contains(page.Body, `name="code"`) {
		t.Fatal("the 2fa page lost its code form")
	}
	// Plain http on an address: no passkey, the code form stays.
	plain := strings.Replace(e.srv.URL, "localhost", "127.0.0.1", 1)
	e.srv.URL = plain
	c = e.client()
	c.postForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	page = c.getHTML("/.totp-auth/2fa")
	if strings.Contains(page.Body, `data-passkey="get"`) || !strings.Contains(page.Body, `name="code"`) {
		t.Fatalf("the 2fa page on plain http offers a passkey, or no code form:\n%s", page.Body)
	}
	if r := c.postJSON("/.totp-auth/2fa/options", nil); r.StatusCode != 404 || r.JSON["error"] != "passkeys_off" {
		t.Fatalf("2fa/options on plain http: %d %s", r.StatusCode, r.Body)
	}
}

func TestPasskey_BrowserFormPostSignsIn(t *testing.T) {
	e := passkeyEnv(t)
	key := &softkey.Authenticator{}
	e.client().enrollPasskey("alice", key)
	c := e.client()
	c.postForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}, "redirect": {"/app?x=1"}})
	page := c.getHTML("/.totp-auth/2fa")
	opts := htmlAttr(t, page.Body, "data-options")
	answer, err := key.Get(softkey.Ceremony{Origin: e.origin()}, []byte(opts))
	if err != nil {
		t.Fatal(err)
	}
	vals := url.Values{"credential": {string(answer)}, "csrf": {formValue(t, page.Body, "csrf")}}
	req, _ := http.NewRequest("POST", e.srv.URL+"/.totp-auth/2fa", strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	r := c.do(req)
	if r.StatusCode != 303 || r.Header.Get("Location") != "/app?x=1" {
		t.Fatalf("form post of a passkey answer: %d %s %s", r.StatusCode, r.Header.Get("Location"), r.Body)
	}
}

// htmlAttr returns the unescaped value of the first attribute name in page.
func htmlAttr(t *testing.T, page, name string) string {
	t.Helper()
	i := strings.Index(page, name+`="`)
	if i < 0 {
		t.Fatalf("no %s in page", name)
	}
	rest := page[i+len(name)+2:]
	v := rest[:strings.IndexByte(rest, '"')]
	r := strings.NewReplacer("&#34;", `"`, "&quot;", `"`, "&amp;", "&", "&lt;", "<", "&gt;", ">", "&#39;", "'", "&#43;", "+")
	return r.Replace(v)
}

// tlsEnv serves e's gateway over https as well, and returns a client that
// reaches it under host (the Host header a browser would send).
func (e *env) tlsClient(host string) (*client, string) {
	srv := httptest.NewTLSServer(e.srv.Config.Handler)
	e.t.Cleanup(srv.Close)
	c := e.client()
	base := srv.Client().Transport
	c.http.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.Host = host
		return base.RoundTrip(r)
	})
	return c, srv.URL
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestPasskey_AnswerMadeOnOneHostRefusedOnAnother(t *testing.T) {
	e := passkeyEnv(t, func(c *gateway.Config) { c.PasskeyRPID = "example.com" })
	key := &softkey.Authenticator{}
	a, url := e.tlsClient("a.example.com")
	e.srv.URL = url
	a.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword})
	cred, _, err := key.Create(softkey.Ceremony{Origin: "https://a.example.com"}, a.options("/.totp-auth/passkeys/new", nil))
	if err != nil {
		t.Fatal(err)
	}
	if r := a.postRaw("/.totp-auth/passkeys", map[string]any{"credential": json.RawMessage(cred)}); r.StatusCode != 200 {
		t.Fatalf("register on a.example.com: %d %s", r.StatusCode, r.Body)
	}
	if acct, _ := e.store.Account("alice"); acct.Passkeys[0].RPID != "example.com" {
		t.Fatalf("stored RP ID %q, want the pinned example.com", acct.Passkeys[0].RPID)
	}
	// The answer is made on a.example.com and sent to b.example.com.
	b, _ := e.tlsClient("b.example.com")
	answer := b.passkeyAnswer("alice", key, softkey.Ceremony{Origin: "https://a.example.com"})
	if r := b.postAnswer("/.totp-auth/2fa", answer); r.StatusCode != 401 || b.signedIn() {
		t.Fatalf("an answer made on another host: %d %s", r.StatusCode, r.Body)
	}
	// Made where it is sent, it works: the passkey is good on every host
	// under its RP ID.
	b2, _ := e.tlsClient("b.example.com")
	answer = b2.passkeyAnswer("alice", key, softkey.Ceremony{Origin: "https://b.example.com"})
	if r := b2.postAnswer("/.totp-auth/2fa", answer); r.StatusCode != 200 {
		t.Fatalf("an answer made on b.example.com: %d %s", r.StatusCode, r.Body)
	}
	// A host outside the RP ID gets no passkey at all.
	evil, _ := e.tlsClient("example.org")
	evil.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword})
	if r := evil.postJSON("/.totp-auth/2fa/options", nil); r.StatusCode != 404 {
		t.Fatalf("2fa/options on a host outside the RP ID: %d %s", r.StatusCode, r.Body)
	}
}

func TestPasskey_ResetTwoFactorRemovesPasskeys(t *testing.T) {
	e := passkeyEnv(t)
	c := e.client()
	c.enrollPasskey("alice", &softkey.Authenticator{})
	if err := e.store.UpdateAccount("alice", func(a *account.Account) error { return a.ResetTwoFactor() }); err != nil {
		t.Fatal(err)
	}
	if c.signedIn() {
		t.Error("reset-2fa left the session")
	}
	r := e.client().postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword})
	if r.JSON["status"] != "enroll_required" {
		t.Fatalf("after reset-2fa: %s, want enroll_required", r.Body)
	}
}

func TestPasskey_SignInIsLevelTwoForPortalVerify(t *testing.T) {
	e := portalEnv(t, func(c *gateway.Config) { c.Passkeys = true })
	c, url := e.tlsClient(portalHost)
	e.srv.URL = url
	origin := "https://" + portalHost
	key := &softkey.Authenticator{}
	c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword})
	cred, _, err := key.Create(softkey.Ceremony{Origin: origin}, c.options("/.totp-auth/passkeys/new", nil))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.postRaw("/.totp-auth/passkeys", map[string]any{"credential": json.RawMessage(cred)}); r.StatusCode != 200 {
		t.Fatalf("register: %d %s", r.StatusCode, r.Body)
	}
	c2, _ := e.tlsClient(portalHost)
	answer := c2.passkeyAnswer("alice", key, softkey.Ceremony{Origin: origin})
	if r := c2.postAnswer("/.totp-auth/2fa", answer); r.StatusCode != 200 {
		t.Fatalf("2fa: %d %s", r.StatusCode, r.Body)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/.totp-auth/verify", nil)
	for k, v := range forwarded() {
		req.Header.Set(k, v)
	}
	req.Header.Set(trustedMark, "yes")
	req.Header.Set("Accept", "text/html")
	r := c2.do(req)
	if r.StatusCode != 200 || r.Header.Get("Remote-User") != "alice" {
		t.Fatalf("verify after a passkey sign-in: %d %q", r.StatusCode, r.Header.Get("Remote-User"))
	}
}

func TestPasskey_StepUpFromAPasswordOnlySessionAsksThePasswordFirst(t *testing.T) {
	e := passkeyEnv(t)
	// A password-only session, as a block with require_2fa false gives.
	optional := passkeyEnv(t, func(c *gateway.Config) { c.Optional2FA = true; c.Store = e.store })
	c := optional.client()
	if r := c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword}); r.JSON["status"] != "ok" {
		t.Fatalf("password-only sign-in: %s", r.Body)
	}
	// The same cookie on this block, which requires 2FA.
	u, _ := url.Parse(e.srv.URL)
	ou, _ := url.Parse(optional.srv.URL)
	step := e.client()
	step.jar.SetCookies(u, c.jar.Cookies(ou))
	if r := step.getJSON("/app"); r.StatusCode != 401 || r.JSON["error"] != "enroll_required" {
		t.Fatalf("step-up: %d %s", r.StatusCode, r.Body)
	}
	if r := step.postJSON("/.totp-auth/passkeys/new", nil); r.StatusCode != 403 || r.JSON["error"] != "password_required" {
		t.Fatalf("passkey options at a step-up without the password: %d %s", r.StatusCode, r.Body)
	}
	key := &softkey.Authenticator{}
	cred, _, err := key.Create(softkey.Ceremony{Origin: e.origin()}, step.options("/.totp-auth/passkeys/new", map[string]string{"password": testPassword}))
	if err != nil {
		t.Fatal(err)
	}
	if r := step.postRaw("/.totp-auth/passkeys", map[string]any{"credential": json.RawMessage(cred)}); r.StatusCode != 200 || len(r.JSON["backup_codes"].([]any)) != 10 {
		t.Fatalf("passkey at a step-up: %d %s", r.StatusCode, r.Body)
	}
	if r := step.getHTML("/app"); r.StatusCode != 200 || !strings.Contains(r.Body, "user=alice") {
		t.Fatalf("after the step-up the block still refuses: %d", r.StatusCode)
	}
}
