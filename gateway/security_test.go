package gateway_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway"
)

func TestReplay_AnAcceptedStepIsNeverAcceptedAgain(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	secret, _ := c.enroll("alice")
	// The enrollment code's step is spent: the same code fails at 2fa.
	r := c.login("alice", testPassword)
	if r.JSON["status"] != "2fa_required" {
		t.Fatal(r.Body)
	}
	if r := c.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0)}); r.StatusCode != 401 {
		t.Fatalf("enrollment code replayed at 2fa: %d", r.StatusCode)
	}
	// An earlier step inside the drift window is refused too.
	e.clock.Advance(30 * time.Second)
	if r := c.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, -1)}); r.StatusCode != 401 {
		t.Fatalf("step before the last accepted one: %d", r.StatusCode)
	}
	if r := c.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("fresh step: %d %s", r.StatusCode, r.Body)
	}
}

func TestReplay_SameCodeSubmittedConcurrentlySucceedsOnce(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailures = 100 })
	owner := e.client()
	secret, _ := owner.enroll("alice")
	e.clock.Advance(30 * time.Second)
	const n = 20
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = e.client()
		if r := clients[i].login("alice", testPassword); r.JSON["status"] != "2fa_required" {
			t.Fatal(r.Body)
		}
	}
	code := e.code(secret, 0)
	var wg sync.WaitGroup
	results := make([]int, n)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.postJSON("/.totp-auth/2fa", map[string]string{"code": code}).StatusCode
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
		t.Fatalf("%d of %d concurrent submits of one code succeeded, want exactly 1: %v", ok, n, results)
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

func TestLockout_FailuresLockTheUserAndCorrectPasswordIsRefused(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailures = 3; c.Lockout = 10 * time.Minute })
	c := e.client()
	for i := 0; i < 3; i++ {
		if r := c.login("alice", "wrong"); r.StatusCode != 401 {
			t.Fatalf("attempt %d: %d", i, r.StatusCode)
		}
	}
	e.clock.Advance(time.Minute)
	r := c.login("alice", testPassword)
	if r.StatusCode != 429 || r.JSON["error"] != "locked" {
		t.Fatalf("correct password while locked: %d %s", r.StatusCode, r.Body)
	}
	if n := len(e.logs.FilterMessage("totp_auth lockout").All()); n != 1 {
		t.Errorf("%d lockout log lines, want 1", n)
	}
	if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra != 540 || r.JSON["retry_after"] != float64(540) {
		t.Fatalf("Retry-After %q retry_after %v, want 540 (lock runs from the failure that reached the limit)", r.Header.Get("Retry-After"), r.JSON["retry_after"])
	}
	// Refused attempts neither count nor extend the lock.
	for i := 0; i < 5; i++ {
		c.login("alice", "wrong")
	}
	e.clock.Advance(9*time.Minute + time.Second)
	if r := c.login("alice", testPassword); r.StatusCode != 200 {
		t.Fatalf("after the lock ran out: %d %s", r.StatusCode, r.Body)
	}
}

func TestLockout_WrongCodesCountWithWrongPasswords(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailures = 4 })
	owner := e.client()
	secret, _ := owner.enroll("alice")
	c := e.client()
	c.login("alice", "wrong")
	c.login("alice", testPassword)
	c.postJSON("/.totp-auth/2fa", map[string]string{"code": "000000"})
	c.postJSON("/.totp-auth/2fa", map[string]string{"code": "ABCD-EFGH"})
	r := c.postJSON("/.totp-auth/2fa", map[string]string{"code": "111111"})
	if r.StatusCode != 401 {
		t.Fatalf("4th failure: %d", r.StatusCode)
	}
	e.clock.Advance(30 * time.Second)
	if r := c.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0)}); r.StatusCode != 429 {
		t.Fatalf("correct code while locked: %d %s", r.StatusCode, r.Body)
	}
}

func TestLockout_RestartingTheFlowDoesNotResetTheCounter(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailures = 3 })
	owner := e.client()
	owner.enroll("alice")
	c := e.client()
	for i := 0; i < 3; i++ {
		// An attacker who knows the password starts over for every guess.
		if r := c.login("alice", testPassword); r.StatusCode != 200 {
			t.Fatalf("password step %d: %d %s", i, r.StatusCode, r.Body)
		}
		c.postJSON("/.totp-auth/2fa", map[string]string{"code": "000000"})
	}
	if r := c.login("alice", testPassword); r.StatusCode != 429 {
		t.Fatalf("a right password after 3 wrong codes: %d, want 429", r.StatusCode)
	}
}

func TestLockout_CompletedSignInResetsTheCounter(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailures = 3 })
	owner := e.client()
	secret, _ := owner.enroll("alice")
	c := e.client()
	c.login("alice", "wrong")
	c.login("alice", "wrong")
	c.signIn("alice", secret)
	c.login("alice", "wrong")
	c.login("alice", "wrong")
	if r := c.login("alice", testPassword); r.StatusCode != 200 {
		t.Fatalf("counter not reset by the completed sign-in: %d", r.StatusCode)
	}
}

func TestLockout_CaseVariantsShareOneLock(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailures = 2 })
	c := e.client()
	c.login("Alice", "wrong")
	c.login("ALICE ", "wrong")
	if r := c.login("alice", testPassword); r.StatusCode != 429 {
		t.Fatalf("alice after Alice/ALICE failures: %d", r.StatusCode)
	}
}

func TestLockout_ParallelGuessesEvaluateAtMostMaxFailures(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.HashQueue = 200 })
	c := e.client()
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := c.login("alice", "guess"+strconv.Itoa(i)).StatusCode
			mu.Lock()
			counts[s]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[401] > gateway.DefaultMaxFailures || counts[401]+counts[429] != 100 {
		t.Fatalf("outcomes %v: want at most %d evaluated (401), the rest 429", counts, gateway.DefaultMaxFailures)
	}
	if n := len(e.logs.FilterMessage("totp_auth password").FilterField(zapString("outcome", "failure")).All()); n > gateway.DefaultMaxFailures {
		t.Fatalf("%d password failures logged, want ≤ %d", n, gateway.DefaultMaxFailures)
	}
}

func TestLockout_PerIPLimitStopsSprayingManyUsers(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailuresPerIP = 4 })
	c := e.client()
	for i := 0; i < 4; i++ {
		c.login("user"+strconv.Itoa(i), "x")
	}
	if r := c.login("alice", testPassword); r.StatusCode != 429 {
		t.Fatalf("fresh user from a locked address: %d", r.StatusCode)
	}
}

func TestLockout_ClientIPComesFromTheServerNotTheHeader(t *testing.T) {
	// The gateway asks the server (Caddy's client_ip) who the client is;
	// a header the client made up is not consulted.
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailuresPerIP = 2 })
	c := e.client()
	for i := 0; i < 2; i++ {
		b := `{"username":"u` + strconv.Itoa(i) + `","password":"x"}`
		req, _ := http.NewRequest("POST", e.srv.URL+"/.totp-auth/login", strings.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "203.0.113."+strconv.Itoa(i))
		c.do(req)
	}
	if r := c.login("alice", testPassword); r.StatusCode != 429 {
		t.Fatalf("forged X-Forwarded-For moved the per-IP counter: %d", r.StatusCode)
	}
}

func TestEnumeration_UnknownUserGetsTheSameAnswerAndWork(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), 8)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *gateway.Config) { c.Users = map[string][]byte{"alice": hash} })
	c := e.client()
	known := c.login("alice", "wrong")
	unknown := c.login("mallory", "wrong")
	if known.StatusCode != unknown.StatusCode || known.Body != unknown.Body {
		t.Fatalf("answers differ: %d %q vs %d %q", known.StatusCode, known.Body, unknown.StatusCode, unknown.Body)
	}
	// The quickest of several tries is what the work costs, whatever else
	// the machine is doing; known and unknown names take turns, so a burst
	// of load elsewhere slows both alike.
	e2 := newEnv(t, func(c *gateway.Config) { c.Users = map[string][]byte{"alice": hash}; c.MaxFailures = 100 })
	c = e2.client()
	timeOnce := func(user string, i int) time.Duration {
		start := time.Now()
		c.login(user, "wrong"+strconv.Itoa(i))
		return time.Since(start)
	}
	timeOnce("nobody", -1) // warm the decoy
	k, u := time.Hour, time.Hour
	for i := 0; i < 8; i++ {
		k = min(k, timeOnce("alice", i))
		u = min(u, timeOnce("nobody", i))
	}
	if u < k/2 || u > k*2 {
		t.Fatalf("unknown user took %s, known %s: not the same work", u, k)
	}
}

func TestHashing_ExcessIsRefusedAtOnceAndGivesTheSlotBack(t *testing.T) {
	slow, err := bcrypt.GenerateFromPassword([]byte(testPassword), 12)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *gateway.Config) {
		c.Users = map[string][]byte{"alice": slow}
		c.HashWorkers, c.HashQueue = 1, 1
		c.MaxFailures = 3
		c.BusyPause = 50 * time.Millisecond
	})
	e.client().login("warm-up", "x") // decoy hash ready
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r := e.client().login("u"+strconv.Itoa(i), "x")
			mu.Lock()
			defer mu.Unlock()
			statuses[r.StatusCode]++
			if r.StatusCode == 503 {
				if r.Header.Get("Retry-After") == "" || r.JSON["error"] != "busy" {
					t.Errorf("503 without Retry-After/busy: %v %s", r.Header, r.Body)
				}
				// Refused without waiting for a hashing slot: only the
				// pause, not the hundreds of ms a cost-12 check takes.
				if d := time.Since(start); d < 50*time.Millisecond || d > 200*time.Millisecond {
					t.Errorf("refusal took %s, want the 50ms pause and no queueing", d)
				}
			}
		}()
	}
	wg.Wait()
	if statuses[503] == 0 || statuses[401] == 0 {
		t.Fatalf("statuses %v: want some evaluated (401) and the excess refused (503)", statuses)
	}
	// Refused attempts were never evaluated, so they took no failure slot:
	// alice is not locked after three busy refusals.
	if r := e.client().login("alice", testPassword); r.StatusCode != 200 {
		t.Fatalf("after the flood: %d %s", r.StatusCode, r.Body)
	}
}

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

func TestAccount_DisableNeedsPasswordAndCode(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.Optional2FA = true })
	c := e.client()
	c.login("alice", testPassword)
	// Turning 2FA on from a session asks for the password first (rule 21).
	secret := c.postJSON("/.totp-auth/setup", map[string]string{"password": testPassword}).JSON["secret"].(string)
	c.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(secret, 0)})
	e.clock.Advance(30 * time.Second)
	if r := c.postJSON("/.totp-auth/disable", map[string]string{"password": "wrong", "code": e.code(secret, 0)}); r.StatusCode != 401 {
		t.Fatalf("wrong password: %d", r.StatusCode)
	}
	if r := c.postJSON("/.totp-auth/disable", map[string]string{"password": testPassword, "code": "000000"}); r.StatusCode != 401 {
		t.Fatalf("wrong code: %d", r.StatusCode)
	}
	if st, _ := e.store.SessionState("alice"); !st.TOTPEnabled {
		t.Fatal("disabled by a failed attempt")
	}
	e.clock.Advance(30 * time.Second)
	if r := c.postJSON("/.totp-auth/disable", map[string]string{"password": testPassword, "code": e.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("disable: %d %s", r.StatusCode, r.Body)
	}
	if st, _ := e.store.SessionState("alice"); st.TOTPEnabled {
		t.Fatal("still enabled")
	}
	if r := c.getJSON("/.totp-auth/whoami"); r.JSON["two_factor"] != false {
		t.Fatalf("whoami: %s", r.Body)
	}
}

func TestAccount_RegenerateNeedsACurrentCode(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	secret, old := c.enroll("alice")
	if r := c.postJSON("/.totp-auth/backup-codes", map[string]string{"code": "000000"}); r.StatusCode != 401 {
		t.Fatalf("without a valid code: %d", r.StatusCode)
	}
	e.clock.Advance(30 * time.Second)
	r := c.postJSON("/.totp-auth/backup-codes", map[string]string{"code": e.code(secret, 0)})
	if r.StatusCode != 200 || len(r.JSON["backup_codes"].([]any)) != 10 {
		t.Fatalf("regenerate: %d %s", r.StatusCode, r.Body)
	}
	c2 := e.client()
	c2.login("alice", testPassword)
	if r := c2.postJSON("/.totp-auth/2fa", map[string]string{"code": old[0]}); r.StatusCode != 401 {
		t.Fatal("old code still works after regeneration")
	}
}

func TestAccount_ReEnrollKeepsOldSecretUntilConfirmed(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	oldSecret, _ := c.enroll("alice")
	// No new secret without the password (SPEC §4 rule 21).
	if r := c.getJSON("/.totp-auth/setup"); r.StatusCode != http.StatusForbidden || r.JSON["error"] != "password_required" {
		t.Fatalf("re-enroll without the password: %d %s", r.StatusCode, r.Body)
	}
	r := c.postJSON("/.totp-auth/setup", map[string]string{"password": testPassword})
	if r.StatusCode != 200 {
		t.Fatalf("password step: %d %s", r.StatusCode, r.Body)
	}
	newSecret := r.JSON["secret"].(string)
	if newSecret == oldSecret {
		t.Fatal("re-enrollment reused the old secret")
	}
	if acct, _ := e.store.Account("alice"); acct.TOTPSecret != oldSecret {
		t.Fatal("old secret replaced before confirmation")
	}
	e.clock.Advance(30 * time.Second)
	r = c.postJSON("/.totp-auth/setup", map[string]string{"code": e.code(newSecret, 0)})
	if r.StatusCode != 200 {
		t.Fatalf("re-enroll: %d %s", r.StatusCode, r.Body)
	}
	if acct, _ := e.store.Account("alice"); acct.TOTPSecret != newSecret {
		t.Fatal("new secret not in place after confirmation")
	}
}

func TestAuditLog_OneLinePerEventAndNoSecrets(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.login("alice", "wrong-password-xyz")
	secret, codes := c.enroll("alice")
	e.clock.Advance(30 * time.Second)
	code := e.code(secret, 0)
	c2 := e.client()
	c2.login("alice", testPassword)
	c2.postJSON("/.totp-auth/2fa", map[string]string{"code": "999999"})
	c2.postJSON("/.totp-auth/2fa", map[string]string{"code": codes[0]})
	c2.postJSON("/.totp-auth/backup-codes", nil)
	c2.postJSON("/.totp-auth/logout", nil)
	c.signIn("alice", secret) // the backup code ended c's session
	c.postJSON("/.totp-auth/logout-all", nil)

	want := map[string]string{
		"totp_auth password":                 "failure",
		"totp_auth enrollment":               "ok",
		"totp_auth sign_in":                  "ok",
		"totp_auth second_factor":            "failure",
		"totp_auth backup_code":              "ok",
		"totp_auth backup_codes_regenerated": "ok",
		"totp_auth logout":                   "ok",
		"totp_auth logout_all":               "ok",
	}
	for msg, outcome := range want {
		entries := e.logs.FilterMessage(msg).FilterField(zapString("outcome", outcome)).All()
		if len(entries) == 0 {
			t.Errorf("no %q line with outcome %s", msg, outcome)
			continue
		}
		f := entries[0].ContextMap()
		if f["user"] != "alice" || f["client_ip"] != "127.0.0.1" {
			t.Errorf("%s: fields %v", msg, f)
		}
	}
	forbidden := append([]string{secret, testPassword, "wrong-password-xyz", code, "999999"}, codes...)
	for _, entry := range e.logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += " " + k + "=" + toString(v)
		}
		for _, s := range forbidden {
			if strings.Contains(line, s) {
				t.Errorf("log line %q holds a secret", line)
			}
		}
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
