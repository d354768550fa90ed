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
)

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

func TestUnknownNames_APasswordInTheNameBoxIsNeitherLoggedNorStored(t *testing.T) {
	rec := &recordingStore{}
	e := newEnv(t, func(c *gateway.Config) { rec.Store = c.Store; c.Store = rec })
	const typo = "correct-horse-in-the-wrong-box"
	c := e.client()
	r1 := c.login(typo, "x")
	r2 := c.login("alice", "x")
	if r1.StatusCode != r2.StatusCode || r1.Body != r2.Body {
		t.Fatalf("unknown and known names answered differently: %d %s / %d %s", r1.StatusCode, r1.Body, r2.StatusCode, r2.Body)
	}
	c.login(typo, "y")
	for _, entry := range e.logs.All() {
		if strings.Contains(toString(entry.ContextMap())+entry.Message, typo) {
			t.Errorf("log line holds the unknown name: %s %v", entry.Message, entry.ContextMap())
		}
	}
	unknown := map[string]bool{}
	for _, k := range rec.keys {
		if strings.Contains(k, typo) {
			t.Errorf("counter key holds the unknown name: %q", k)
		}
		if strings.HasPrefix(k, "user:Unknown-") {
			unknown[k] = true
		}
	}
	if len(unknown) != 1 {
		t.Fatalf("unknown-name counter keys %v: want one keyed hash for both attempts", unknown)
	}
	var unknownKey string
	for k := range unknown {
		unknownKey = k
	}
	// A known user is still logged and counted by name.
	found := false
	for _, k := range rec.keys {
		found = found || k == "user:alice"
	}
	if !found {
		t.Errorf("alice's attempt was not counted as user:alice: %q", rec.keys)
	}
	users := e.logs.FilterField(zapString("outcome", "failure")).All()
	if len(users) < 3 || users[0].ContextMap()["user"] != unknownKey[len("user:"):] || users[1].ContextMap()["user"] != "alice" {
		t.Errorf("failure lines name %v", users)
	}
}
