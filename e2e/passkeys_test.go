package e2e_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/totp-auth/totp_auth/internal/pgtest"
	"github.com/totp-auth/totp_auth/internal/softkey"
)

// Passkeys (SPEC §14) in a real browser: headless Chromium with the
// DevTools virtual authenticator, against a real Caddy on
// http://localhost (a secure context, so WebAuthn runs), and the same
// answer raced to two instances on PostgreSQL.

// localSite is a site block on http://localhost:port (WebAuthn needs a
// secure context, which http offers only on localhost).
func localSite(port int, directives ...string) string {
	return fmt.Sprintf("http://localhost:%d {\n\tbind 127.0.0.1\n\t%s\n}\n", port, strings.Join(directives, "\n\t"))
}

// passkeyTab is a tab on http://localhost:port with a virtual platform
// authenticator of its own: CTAP 2.1, a resident-key slot, user
// verification that succeeds, presence given at once.
func passkeyTab(t *testing.T, browser context.Context, port int) (*tab, webauthn.AuthenticatorID) {
	t.Helper()
	b := newTab(t, browser, port)
	b.base = fmt.Sprintf("http://localhost:%d", port)
	return b, b.addAuthenticator()
}

func (b *tab) addAuthenticator() webauthn.AuthenticatorID {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		b.t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return res.AuthenticatorID
}

// credentials returns what the authenticator holds.
func (b *tab) credentials(id webauthn.AuthenticatorID) []*webauthn.Credential {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		b.t.Fatalf("WebAuthn.getCredentials: %v", err)
	}
	return res.Credentials
}

// withoutUserVerification makes the authenticator's answers claim no
// user verification (UV flag cleared), or stop doing so.
func (b *tab) withoutUserVerification(id webauthn.AuthenticatorID, on bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{AuthenticatorID: id, IsBadUV: &on}); err != nil {
		b.t.Fatalf("WebAuthn.setResponseOverrideBits: %v", err)
	}
}

// signInWithPassword fills the login form and sends it.
func (b *tab) signInWithPassword(user string) {
	b.t.Helper()
	b.open(prefix + "/login")
	b.fill("#username", user)
	b.fill("#password", testPassword)
	b.click(`form:not([data-passkey]) button[type=submit]`)
}

// signOut ends the tab's session from the account page.
func (b *tab) signOut() {
	b.t.Helper()
	b.open(prefix + "/account")
	b.click(`.row form[action$="/logout"] button`)
}

// passkeySite starts a Caddy on http://localhost with passkeys and
// passkey_login for alice and bob.
func passkeySite(t *testing.T) (*caddyProc, int) {
	t.Helper()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", localSite(port, c.totpAuth("totp.db", []string{"alice", "bob"}, "passkeys", "passkey_login"),
		"reverse_proxy "+up.addr())), port)
	return c, port
}

// enrollPasskey signs user in for the first time and chooses a passkey
// named name at the setup page, up to the page with the backup codes.
func (b *tab) enrollPasskey(user, name, target string) {
	b.t.Helper()
	b.open(target)
	b.fill("#username", user)
	b.fill("#password", testPassword)
	b.click(`form:not([data-passkey]) button[type=submit]`)
	b.at(prefix + "/setup")
	if b.count(`section.passkey[hidden]`) != 0 || b.count("#passkey-create") != 1 {
		b.t.Fatal("the setup page hides its passkey choice although WebAuthn runs here")
	}
	get(b, "clear the name", chromedp.Evaluate[string](`document.querySelector("#passkey-name").value = ""`))
	b.fill("#passkey-name", name)
	b.shot("setup-choose-passkey-or-app")
	b.ceremony("#passkey-create")
	b.at(prefix + "/codes")
}

func TestPasskeys_Browser_EnrollAtFirstSignInAndUseAsSecondFactor(t *testing.T) {
	t.Parallel()
	c, port := passkeySite(t)
	b, auth := passkeyTab(t, newBrowser(t), port)

	b.enrollPasskey("alice", " Laptop ", "/app?x=1")
	if codes := b.texts("ul.codes li"); len(codes) != 10 {
		t.Fatalf("enrolling a passkey showed %d backup codes, want 10", len(codes))
	}
	b.shot("passkey-enrolled-backup-codes")
	b.click("a.continue")
	if e := b.upstreamEcho(); userOf(e) != "alice" || e.Path != "/app" || e.Query != "x=1" {
		t.Fatalf("after enrolling a passkey the upstream saw %+v", e)
	}
	if creds := b.credentials(auth); len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("the authenticator holds %+v, want one discoverable credential for localhost", creds)
	}
	if !logShows(c, `"event":"enrollment","outcome":"ok","user":"alice"`) {
		t.Error("the passkey enrollment was not logged")
	}

	// Second factor: the password, then "Use your passkey".
	b.signOut()
	b.signInWithPassword("alice")
	b.at(prefix + "/2fa")
	b.shot("second-factor-use-your-passkey")
	// On phones and desktops, light and dark, nothing sticks out.
	b.look(prefix+"/2fa", "passkey-second-factor", "Two-factor authentication")
	b.ceremony("#passkey-2fa")
	if e := b.upstreamEcho(); userOf(e) != "alice" {
		t.Fatalf("after the passkey second factor the upstream saw %+v", e)
	}

	// The account page lists it; the operator too, and removes it.
	b.open(prefix + "/account")
	if names := b.texts(".passkeys .passkey-name"); len(names) != 1 || names[0] != "Laptop" {
		t.Fatalf("account page lists passkeys %v, want [Laptop]", names)
	}
	b.shot("account-passkeys")
	b.look(prefix+"/account", "passkey-account", "Your account")
	out, err := c.cli("", nil, "user", "passkeys", "alice")
	if err != nil || !strings.Contains(out, "Laptop") || !strings.Contains(out, "localhost") {
		t.Fatalf("user passkeys alice: %v\n%s", err, out)
	}
	id := base64URL(b.credentials(auth)[0].CredentialID)
	// "--", as the command's help says: an id may begin with "-".
	out, err = c.cli("", nil, "user", "remove-passkey", "alice", "--", id)
	if err != nil || !strings.Contains(out, "Removed passkey") {
		t.Fatalf("user remove-passkey alice %s: %v\n%s", id, err, out)
	}
	b.open(prefix + "/account")
	b.at(prefix + "/login") // removing it ended the session
}

func TestPasskeys_Browser_PasskeyAloneNeedsUserVerificationAndRefusesAClone(t *testing.T) {
	t.Parallel()
	c, port := passkeySite(t)
	browser := newBrowser(t)
	b, auth := passkeyTab(t, browser, port)
	b.enrollPasskey("alice", "Phone", "/")
	b.signOut()

	// A passkey alone, with user verification.
	b.open(prefix + "/login?redirect=/app/alone")
	b.shot("login-with-passkey")
	b.ceremony("#passkey-login")
	if e := b.upstreamEcho(); userOf(e) != "alice" || e.Path != "/app/alone" {
		t.Fatalf("after a passkey-only sign-in the upstream saw %+v", e)
	}
	if !logShows(c, `"method":"passkey"`) {
		t.Error("the passkey sign-in was not logged with method passkey")
	}

	// Without user verification it is refused, in words.
	b.signOut()
	b.withoutUserVerification(auth, true)
	b.open(prefix + "/login")
	b.ceremony("#passkey-login")
	b.at(prefix + "/login")
	if msg := b.alert(); !strings.Contains(msg, "did not verify you") {
		t.Fatalf("a passkey sign-in without user verification says %q", msg)
	}
	b.shot("passkey-not-verified")
	b.withoutUserVerification(auth, false)

	// A clone of the credential, with a lower counter, is refused and
	// logged; the original keeps working.
	orig := b.credentials(auth)[0]
	clone, cloneAuth := passkeyTab(t, browser, port)
	// Sent without the fields this Chromium does not know (cdproto is newer).
	addCredential := cdp.Command[map[string]any, cdp.Empty]{Method: webauthn.CommandAddCredential}
	func() {
		ctx, cancel := context.WithTimeout(clone.ctx, stepTimeout)
		defer cancel()
		if _, err := chromedp.Call(ctx, addCredential, map[string]any{
			"authenticatorId": cloneAuth,
			"credential": map[string]any{
				"credentialId": base64.StdEncoding.EncodeToString(orig.CredentialID), "isResidentCredential": true,
				"rpId": orig.RpID, "privateKey": base64.StdEncoding.EncodeToString(orig.PrivateKey),
				"userHandle": base64.StdEncoding.EncodeToString(orig.UserHandle), "signCount": 0,
			},
		}); err != nil {
			t.Fatalf("WebAuthn.addCredential: %v", err)
		}
	}()
	clone.open(prefix + "/login")
	clone.ceremony("#passkey-login")
	if msg := clone.alert(); !strings.Contains(msg, "signature counter went back") {
		t.Fatalf("a cloned passkey with a lower counter: page says %q", msg)
	}
	if !logShows(c, `"reason":"counter_not_growing"`) {
		t.Error("the refused clone was not logged")
	}
	b.open(prefix + "/login")
	b.ceremony("#passkey-login")
	if e := b.upstreamEcho(); userOf(e) != "alice" {
		t.Fatalf("the original passkey after a refused clone: upstream saw %+v", e)
	}
}

// enrollAppThenAddPasskey signs user in for the first time, enrolls an
// authenticator app, then adds a passkey beside it from the account page
// (the password first), and returns the app; the tab ends on the account
// page.
func (b *tab) enrollAppThenAddPasskey(user string) *authenticator {
	b.t.Helper()
	b.signInWithPassword(user)
	b.at(prefix + "/setup")
	app := &authenticator{t: b.t, secret: strings.ReplaceAll(b.text("#secret"), " ", "")}
	b.fill("#code", app.code())
	b.click(`form[action$="/setup"]:not([data-passkey]) button[type=submit]`)
	b.at(prefix + "/codes")
	b.click("a.continue")
	b.open(prefix + "/account")
	b.fill("#passkey-password", testPassword)
	b.click(`form[action$="/passkeys/new"] button`)
	b.at(prefix + "/passkeys/new")
	b.shot("add-passkey")
	b.ceremony("#passkey-create")
	b.at(prefix + "/account")
	return app
}

func TestPasskeys_Browser_AddOneBesideTOTPAfterThePassword(t *testing.T) {
	t.Parallel()
	_, port := passkeySite(t)
	bob, bobAuth := passkeyTab(t, newBrowser(t), port)
	app := bob.enrollAppThenAddPasskey("bob")
	if names := bob.texts(".passkeys .passkey-name"); len(names) != 1 {
		t.Fatalf("after adding a passkey beside TOTP the account lists %v", names)
	}
	if creds := bob.credentials(bobAuth); len(creds) != 1 {
		t.Fatalf("bob's authenticator holds %d credentials", len(creds))
	}
	bob.signOut()
	bob.signInWithPassword("bob")
	bob.at(prefix + "/2fa")
	bob.ceremony("#passkey-2fa")
	if e := bob.upstreamEcho(); userOf(e) != "bob" {
		t.Fatalf("bob's passkey beside TOTP: upstream saw %+v", e)
	}
	// The code keeps working too.
	bob.signOut()
	bob.signInWithPassword("bob")
	bob.fill("#code", app.code())
	bob.click(`form[action$="/2fa"]:not([data-passkey]):not(.backup) button[type=submit]`)
	if e := bob.upstreamEcho(); userOf(e) != "bob" {
		t.Fatalf("bob's code beside a passkey: upstream saw %+v", e)
	}
}

func TestPasskeys_Browser_PlainHTTPOffersNoPasskeyAndTOTPWorks(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"alice"}, "passkeys", "passkey_login"),
		"reverse_proxy "+up.addr())), port)
	b := newTab(t, newBrowser(t), port) // http://127.0.0.1: no secure context
	b.open(prefix + "/login")
	if b.count("#passkey-login") != 0 || b.count("#username") != 1 {
		t.Fatal("the login page offers a passkey on plain http")
	}
	b.fill("#username", "alice")
	b.fill("#password", testPassword)
	b.click(`form:not([data-passkey]) button[type=submit]`)
	b.at(prefix + "/setup")
	if b.count("#passkey-create") != 0 || b.count("#code") != 1 {
		t.Fatal("the setup page offers a passkey on plain http")
	}
	app := &authenticator{t: t, secret: strings.ReplaceAll(b.text("#secret"), " ", "")}
	b.fill("#code", app.code())
	b.click(`form[action$="/setup"] button[type=submit]`)
	b.at(prefix + "/codes")
	b.shot("plain-http-totp-only")
}

func TestPasskeys_Postgres_OneAnswerRacedToTwoInstancesIsAcceptedOnce(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	c := &cluster{a: newCaddy(t), b: newCaddy(t), aPort: freePort(t), bPort: freePort(t), dsn: dsn, up: newUpstream(t)}
	block := postgresBlock(dsn, []string{"alice"}, "passkeys")
	for _, inst := range []struct {
		p    *caddyProc
		port int
	}{{c.a, c.aPort}, {c.b, c.bPort}} {
		inst.p.start(inst.p.caddyfile("", localSite(inst.port, block, "reverse_proxy "+c.up.addr())), inst.port)
	}
	// Behind one balancer both instances serve one origin: a request for
	// it reaches either with the same Host.
	origin := fmt.Sprintf("http://localhost:%d", c.aPort)
	jar, _ := cookiejar.New(nil)
	viaA, viaB := instanceClient(t, origin, c.aPort, jar), instanceClient(t, origin, c.bPort, jar)

	// Enrol a passkey at first sign-in through instance A.
	key := &softkey.Authenticator{NoCounter: true} // the challenge alone must refuse the second
	expect(t, "POST login", viaA.api("POST", "login", map[string]string{"username": "alice", "password": testPassword}), http.StatusOK)
	r := viaA.api("POST", "passkeys/new", map[string]string{})
	expect(t, "POST passkeys/new", r, http.StatusOK)
	cred, _, err := key.Create(softkey.Ceremony{Origin: origin}, r.body)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "POST passkeys", viaB.api("POST", "passkeys", map[string]any{"name": "Key", "credential": json.RawMessage(cred)}), http.StatusOK)

	// A new sign-in; its one answer goes to both instances at once, while
	// the account's row is held so both wait for it.
	jar2, _ := cookiejar.New(nil)
	a2 := instanceClient(t, origin, c.aPort, jar2)
	expect(t, "POST login", a2.api("POST", "login", map[string]string{"username": "alice", "password": testPassword}), http.StatusOK)
	r = a2.api("POST", "2fa/options", map[string]string{})
	expect(t, "POST 2fa/options", r, http.StatusOK)
	answer, err := key.Get(softkey.Ceremony{Origin: origin}, r.body)
	if err != nil {
		t.Fatal(err)
	}
	// Instance B's client holds copies of the same cookies.
	jarB, _ := cookiejar.New(nil)
	u, _ := url.Parse(origin)
	jarB.SetCookies(u, jar2.Cookies(u))
	b2 := instanceClient(t, origin, c.bPort, jarB)
	held := lockRow(t, dsn, "accounts", "name", "alice")
	body := map[string]any{"credential": json.RawMessage(answer)}
	var counts map[int]int
	done := make(chan struct{})
	go func() {
		defer close(done)
		counts = parallel(2, func(i int) int {
			cl := a2
			if i == 1 {
				cl = b2
			}
			return cl.api("POST", "2fa", body).status
		})
	}()
	held.releaseAfterWaiters(2, 5*time.Second)
	<-done
	if counts[http.StatusOK] != 1 || counts[http.StatusUnauthorized] != 1 {
		t.Fatalf("one answer sent to both instances: outcomes %v, want one 200 and one 401", counts)
	}
	if !logShows(c.a, `"reason":"challenge_reused"`) && !logShows(c.b, `"reason":"challenge_reused"`) {
		t.Error("the second use was not logged as a reused challenge")
	}
}

// instanceClient is a client for origin whose connections all go to the
// instance on port, as a balancer in front of several would send them.
func instanceClient(t *testing.T, origin string, port int, jar http.CookieJar) *client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &client{t: t, base: origin, http: &http.Client{
		Jar:     jar,
		Timeout: 15 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// userOf returns the user the upstream was told of.
func userOf(e echo) string {
	for k, v := range e.Headers {
		if strings.EqualFold(k, "Remote-User") && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// count returns how many elements sel matches on the page.
func (b *tab) count(sel string) int {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	return get(b, "count "+sel, chromedp.Evaluate[int]("document.querySelectorAll("+string(q)+").length"))
}

// ceremony clicks the passkey button sel and waits until the page the
// ceremony posts its answer to has loaded: the answer is posted by the
// page's script once the authenticator replied, after the click itself.
func (b *tab) ceremony(sel string) {
	b.t.Helper()
	get(b, "mark the page", chromedp.Evaluate[bool]("window.passkeyTestMark = true"))
	b.expand(sel)
	deadline := time.Now().Add(stepTimeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.passkeyTestMark !== true && document.readyState === "complete"`))
		cancel()
		if err == nil && done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("the passkey ceremony of %s led to no new page (at %s): %s", sel, b.location(), b.alert())
}

func TestPasskeys_Browser_PasskeyOnlyUserMakesNewBackupCodesFromTheAccountPage(t *testing.T) {
	t.Parallel()
	c, port := passkeySite(t)
	b, _ := passkeyTab(t, newBrowser(t), port)
	b.enrollPasskey("alice", "Laptop", "/app")
	old := b.texts("ul.codes li")
	if len(old) != 10 {
		t.Fatalf("enrolling showed %d backup codes", len(old))
	}
	b.click("a.continue")

	// The account page asks for the passkey, not for a code from an app
	// alice does not have.
	b.open(prefix + "/account")
	if b.count("#regen-code") != 0 || !b.shown(`form[data-passkey][action$="/backup-codes"]`) {
		t.Fatal("the account page of a passkey-only user offers no passkey for new backup codes, or asks for an app's code")
	}
	if s := b.text("section[aria-labelledby=h-codes]"); !strings.Contains(s, "Confirm with your passkey") || strings.Contains(s, "code from your app") {
		t.Errorf("the backup codes section says:\n%s", s)
	}
	b.ceremony("#passkey-codes")
	b.at(prefix + "/codes")
	b.expectHeading("New backup codes")
	fresh := b.texts("ul.codes li")
	if len(fresh) != 10 {
		t.Fatalf("the new set has %d codes", len(fresh))
	}
	for _, code := range fresh {
		if slices.Contains(old, code) {
			t.Errorf("new backup code %s was in the old set", code)
		}
	}
	if s := b.text("main"); !strings.Contains(s, "in place of your passkey") {
		t.Errorf("the codes page says:\n%s", s)
	}
	b.shot("passkey-new-backup-codes")
	logged := false
	for _, line := range strings.Split(c.log.String(), "\n") {
		logged = logged || strings.Contains(line, `"event":"backup_codes_regenerated","outcome":"ok","user":"alice"`) && strings.Contains(line, `"method":"passkey"`)
	}
	if !logged {
		t.Error("the new set was not logged with method passkey")
	}
	b.click("a.continue")
	b.at(prefix + "/account")

	// The old codes stop working; a new one signs in.
	b.signOut()
	b.signInWithPassword("alice")
	b.at(prefix + "/2fa")
	if s := b.text("main"); !strings.Contains(s, "A backup code also works") || strings.Contains(s, "6-digit") {
		t.Errorf("the second-factor page of a passkey-only user says:\n%s", s)
	}
	b.fill("#backup-code", old[0])
	b.click("form.backup button[type=submit]")
	b.at(prefix + "/2fa")
	if a := b.alert(); !strings.Contains(a, "That code is not right") {
		t.Fatalf("an old backup code after a new set: the page says %q", a)
	}
	b.fill("#backup-code", fresh[0])
	b.click("form.backup button[type=submit]")
	b.at(prefix + "/backup-codes")
}

func TestPasskeys_Browser_WithJavaScriptOffACodeStillMakesNewBackupCodes(t *testing.T) {
	t.Parallel()
	_, port := passkeySite(t)
	bob, _ := passkeyTab(t, newBrowser(t), port)
	app := bob.enrollAppThenAddPasskey("bob")
	if !bob.shown(`form[data-passkey][action$="/backup-codes"]`) || !bob.shown("#regen-code") {
		t.Fatal("with a passkey and an app, the account page does not offer both for new backup codes")
	}

	bob.disableScripts()
	bob.open(prefix + "/account")
	if bob.shown(`form[data-passkey][action$="/backup-codes"]`) {
		t.Error("without JavaScript the account page shows a passkey button that cannot work")
	}
	bob.fill("#regen-code", app.code())
	bob.click(`form[action$="/backup-codes"]:not([data-passkey]) button[type=submit]`)
	bob.expectHeading("New backup codes")
	if codes := bob.texts("ul.codes li"); len(codes) != 10 {
		t.Fatalf("the new set has %d codes", len(codes))
	}
}
