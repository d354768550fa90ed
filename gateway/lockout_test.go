package gateway_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"golang.org/x/crypto/bcrypt"
)

// The lockout as the sign-in flow applies it (SPEC §4 rules 5, 13, 15 and
// 25): failures per user and per client, refusals while locked, and the
// bounded hashing queue. The counters' own rules are tested in package
// account.

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

func TestLockout_IPv6AddressesOfOneSlash64ShareOneBudget(t *testing.T) {
	e := newEnv(t, clientIPHeader, func(c *gateway.Config) { c.MaxFailuresPerIP = 4 })
	c := e.client()
	for i := range 4 {
		c.loginFrom("2001:db8:5:6::"+strconv.Itoa(i+1), "user"+strconv.Itoa(i), "x")
	}
	if r := c.loginFrom("2001:db8:5:6:abcd::99", "alice", testPassword); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fresh address of the same /64: %d, want 429", r.StatusCode)
	}
	if r := c.loginFrom("2001:db8:5:7::1", "alice", testPassword); r.StatusCode != http.StatusOK {
		t.Fatalf("address of the next /64: %d, want 200", r.StatusCode)
	}
	if r := c.loginFrom("192.0.2.1", "alice", testPassword); r.StatusCode != http.StatusOK {
		t.Fatalf("IPv4 client: %d, want 200", r.StatusCode)
	}
}

func TestLockout_RefusalsByALockLogOneLinePerCounterPerSecond(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxFailures = 2 })
	c := e.client()
	for range 2 {
		c.login("alice", "wrong")
	}
	before := e.logs.FilterField(zapString("outcome", "locked")).Len()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.client().login("alice", testPassword); r.StatusCode != http.StatusTooManyRequests {
				t.Errorf("locked user: %d", r.StatusCode)
			}
		}()
	}
	wg.Wait()
	if n := e.logs.FilterField(zapString("outcome", "locked")).Len() - before; n != 1 {
		t.Fatalf("50 refusals within one second logged %d lines, want 1", n)
	}
	e.clock.Advance(time.Second)
	c.login("alice", testPassword)
	lines := e.logs.FilterField(zapString("outcome", "locked")).All()
	if len(lines)-before != 2 {
		t.Fatalf("a refusal a second later logged %d lines in all, want 2", len(lines)-before)
	}
	if got := lines[len(lines)-1].ContextMap()["refusals_not_logged"]; got != int64(49) {
		t.Errorf("the next line says %v refusals went unlogged, want 49", got)
	}
}

// Floods and what they leave behind (SPEC §4 rule 25, issue item 10).

// clientIPHeader lets a test say which address a request comes from, as
// Caddy's client_ip would.
func clientIPHeader(c *gateway.Config) {
	c.ClientIP = func(r *http.Request) string { return r.Header.Get("X-Test-Client-IP") }
}

func (c *client) loginFrom(ip, user, password string) response {
	c.e.t.Helper()
	req, _ := http.NewRequest("POST", c.e.srv.URL+"/.totp-auth/login",
		strings.NewReader(`{"username":`+strconv.Quote(user)+`,"password":`+strconv.Quote(password)+`}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Test-Client-IP", ip)
	return c.do(req)
}

// recordingStore remembers every counter key an update named.
type recordingStore struct {
	account.Store
	mu   sync.Mutex
	keys []string
}

func (s *recordingStore) UpdateCounters(keys []string, fn func(map[string]*account.Counter) error) error {
	s.mu.Lock()
	s.keys = append(s.keys, keys...)
	s.mu.Unlock()
	return s.Store.UpdateCounters(keys, fn)
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
