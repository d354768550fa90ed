package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// Recovery belongs to the session that recovered (SPEC §4 rule 20).

func TestRecovery_SpendingABackupCodeEndsEveryOtherSessionAndPendingSignIn(t *testing.T) {
	e := newEnv(t)
	owner := e.client()
	secret, codes := owner.enroll("alice")
	thief := e.client()
	thief.signIn("alice", secret)
	pending := e.client()
	e.clock.Advance(30 * time.Second)
	if r := pending.login("alice", testPassword); r.JSON["status"] != "2fa_required" {
		t.Fatal(r.Body)
	}

	real := e.client()
	real.login("alice", testPassword)
	if r := real.postJSON("/.totp-auth/2fa", map[string]string{"code": codes[0]}); r.JSON["status"] != "regenerate_backup_codes" {
		t.Fatalf("backup code: %d %s", r.StatusCode, r.Body)
	}
	for name, c := range map[string]*client{"owner": owner, "thief": thief} {
		if r := c.postJSON("/.totp-auth/backup-codes", nil); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s's session from before the backup code made new codes: %d %s", name, r.StatusCode, r.Body)
		}
	}
	e.clock.Advance(30 * time.Second)
	if r := pending.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0)}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("pending sign-in from before the backup code: %d %s", r.StatusCode, r.Body)
	}
	// The spending session makes the new set without a TOTP code.
	if r := real.postJSON("/.totp-auth/backup-codes", nil); r.StatusCode != 200 {
		t.Fatalf("the spending session: %d %s", r.StatusCode, r.Body)
	}
}

func TestRecovery_OnlyTheSpendingSessionSkipsTheTOTPCode(t *testing.T) {
	e := newEnv(t)
	owner := e.client()
	secret, codes := owner.enroll("alice")
	real := e.client()
	real.login("alice", testPassword)
	if r := real.postJSON("/.totp-auth/2fa", map[string]string{"code": codes[0]}); r.JSON["status"] != "regenerate_backup_codes" {
		t.Fatal(r.Body)
	}
	// Someone who has the password and a TOTP code signs in afterwards:
	// held at backup-codes like every session, but asked for a code.
	other := e.client()
	other.signIn("alice", secret)
	if r := other.getJSON("/.totp-auth/backup-codes"); r.JSON["regenerate_required"] != true || r.JSON["code_required"] != true {
		t.Fatalf("another session's view of recovery: %s", r.Body)
	}
	if r := other.postJSON("/.totp-auth/backup-codes", nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another session made codes without a TOTP code: %d %s", r.StatusCode, r.Body)
	}
	if r := real.getJSON("/.totp-auth/backup-codes"); r.JSON["code_required"] != false {
		t.Fatalf("the spending session's view: %s", r.Body)
	}
	// It locks nobody out: the spender still regenerates, the other one
	// can with a current code.
	e.clock.Advance(30 * time.Second)
	if r := other.postJSON("/.totp-auth/backup-codes", map[string]string{"code": e.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("another session with a TOTP code: %d %s", r.StatusCode, r.Body)
	}
}

func TestBackupCode_SignsInOnceThenHoldsUserUntilRegenerated(t *testing.T) {
	e := newEnv(t)
	owner := e.client()
	secret, codes := owner.enroll("alice")
	c := e.client()
	c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword, "redirect": "/app"})
	r := c.postJSON("/.totp-auth/2fa", map[string]string{"code": strings.ToLower(codes[3])})
	if r.StatusCode != 200 || r.JSON["status"] != "regenerate_backup_codes" {
		t.Fatalf("backup code: %d %s", r.StatusCode, r.Body)
	}
	// The older session ended (SPEC §4 rule 20); one that signs in
	// afterwards is held at backup-codes like the spending one.
	if r := owner.getJSON("/app"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("session from before the backup code: %d, want 401", r.StatusCode)
	}
	owner.signIn("alice", secret)
	for _, cl := range []*client{c, owner} {
		if r := cl.getJSON("/app"); r.StatusCode != 403 || r.JSON["error"] != "regenerate_backup_codes" {
			t.Fatalf("API request while regeneration is due: %d %s", r.StatusCode, r.Body)
		}
		if r := cl.getHTML("/app"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/backup-codes?redirect=%2Fapp" {
			t.Fatalf("browser request while regeneration is due: %d %s", r.StatusCode, r.Header.Get("Location"))
		}
	}
	// The used code is void at once.
	c2 := e.client()
	c2.login("alice", testPassword)
	if r := c2.postJSON("/.totp-auth/2fa", map[string]string{"code": codes[3]}); r.StatusCode != 401 {
		t.Fatalf("used backup code accepted again: %d", r.StatusCode)
	}
	r = c.postJSON("/.totp-auth/backup-codes", nil)
	if r.StatusCode != 200 || len(r.JSON["backup_codes"].([]any)) != 10 {
		t.Fatalf("regenerate: %d %s", r.StatusCode, r.Body)
	}
	for _, cl := range []*client{c, owner} {
		if r := cl.getJSON("/app"); r.StatusCode != 200 {
			t.Fatalf("after regeneration: %d", r.StatusCode)
		}
	}
	// Every old code is void.
	c3 := e.client()
	c3.login("alice", testPassword)
	if r := c3.postJSON("/.totp-auth/2fa", map[string]string{"code": codes[5]}); r.StatusCode != 401 {
		t.Fatalf("old backup code accepted after regeneration: %d", r.StatusCode)
	}
}

func TestBackupCode_SameCodeConcurrentlySucceedsOnce(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.HashWorkers = 2; c.HashQueue = 20; c.MaxFailures = 100 })
	owner := e.client()
	_, codes := owner.enroll("alice")
	const n = 8
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = e.client()
		clients[i].login("alice", testPassword)
	}
	var wg sync.WaitGroup
	results := make([]int, n)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.postJSON("/.totp-auth/2fa", map[string]string{"code": codes[0]}).StatusCode
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range results {
		if s == 200 {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent uses of one backup code succeeded, want 1: %v", ok, results)
	}
}

func TestBackupCode_WrongTOTPCodeCostsNoBcrypt(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.HashWorkers = 1; c.HashQueue = 1 })
	c := e.client()
	c.enroll("alice")
	c2 := e.client()
	c2.login("alice", testPassword)
	start := time.Now()
	c2.postJSON("/.totp-auth/2fa", map[string]string{"code": "000000"})
	// Ten bcrypt checks at the backup-code cost take hundreds of ms.
	if d := time.Since(start); d > 40*time.Millisecond {
		t.Fatalf("a wrong 6-digit code took %s: it was checked against the backup hashes", d)
	}
}

func TestRecovery_BrowserGoesOnToTheOriginalTargetAfterRegenerating(t *testing.T) {
	e := newEnv(t)
	owner := e.client()
	_, codes := owner.enroll("alice")
	c := e.client()
	c.postForm("/.totp-auth/login", "/.totp-auth/login", url.Values{"username": {"alice"}, "password": {testPassword}, "redirect": {"/dash?tab=2"}})
	r := c.postForm("/.totp-auth/2fa", "/.totp-auth/2fa", url.Values{"code": {codes[0]}})
	loc := r.Header.Get("Location")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/.totp-auth/backup-codes") {
		t.Fatalf("backup code sign-in: %d %s", r.StatusCode, loc)
	}
	r = c.postForm(loc, "/.totp-auth/backup-codes", url.Values{"redirect": {formValue(t, c.getHTML(loc).Body, "redirect")}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/codes" {
		t.Fatalf("new codes: %d %s, want 303 to the codes page", r.StatusCode, r.Header.Get("Location"))
	}
	if r = c.getHTML("/.totp-auth/codes"); r.StatusCode != 200 || !strings.Contains(r.Body, `href="/dash?tab=2"`) {
		t.Fatalf("new codes page does not continue to the original target:\n%s", r.Body)
	}
}
