package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests play the attacker against a running Caddy: real parallel
// HTTP requests, the real bbolt file, Caddy's own client IP.

// parallel runs fn n times at once and counts the statuses it returns.
func parallel(n int, fn func(i int) int) map[int]int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			s := fn(i)
			mu.Lock()
			counts[s]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return counts
}

// logShows waits briefly for Caddy's output, which arrives through a pipe,
// to contain s.
func logShows(c *caddyProc, s string) bool {
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(c.log.String(), s) {
			return true
		}
	}
	return false
}

func login(c *client, user, password string) response {
	return c.api("POST", "login", map[string]string{"username": user, "password": password})
}

func TestAttack_HundredParallelGuessesEvaluateAtMostFiveAndTheLockSurvivesARestart(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	cfg := c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"alice"}, "max_failures_per_ip 1000"), "reverse_proxy "+up.addr()))
	c.start(cfg, port)

	counts := parallel(100, func(i int) int {
		return login(newClient(t, port), "alice", fmt.Sprintf("guess-%d", i)).status
	})
	if counts[http.StatusUnauthorized] > 5 || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests]+counts[http.StatusServiceUnavailable] != 100 {
		t.Fatalf("outcomes %v: want at most 5 guesses evaluated (401), the rest refused", counts)
	}
	if n := strings.Count(c.log.String(), `"event":"password","outcome":"failure"`); n > 5 {
		t.Fatalf("%d failed guesses logged, want at most 5", n)
	}
	// Fill the counter for certain, then the right password is refused.
	for i := 0; i < 5; i++ {
		login(newClient(t, port), "ALICE", "wrong")
	}
	r := login(newClient(t, port), "alice", testPassword)
	if r.status != http.StatusTooManyRequests || r.json(t)["error"] != "locked" || r.header.Get("Retry-After") == "" {
		t.Fatalf("right password while locked: %d %s", r.status, r.body)
	}

	// The counter lives in the database: a restart does not unlock.
	c.stop()
	c.start(cfg, port)
	if r := login(newClient(t, port), "alice", testPassword); r.status != http.StatusTooManyRequests {
		t.Fatalf("right password after a restart: %d %s, want 429", r.status, r.body)
	}
}

func TestAttack_SameCodeSentConcurrentlyIsAcceptedOnce(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"bob"}, "max_failures 100"), "reverse_proxy "+up.addr())), port)
	e := enroll(t, newClient(t, port), "bob")

	const n = 12
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = newClient(t, port)
		expect(t, "password step", login(clients[i], "bob", testPassword), http.StatusOK)
	}
	code := totp(t, e.secret, e.codeTime.Add(30*time.Second))
	counts := parallel(n, func(i int) int {
		return clients[i].api("POST", "2fa", map[string]string{"code": code}).status
	})
	if counts[http.StatusOK] != 1 {
		t.Fatalf("outcomes %v: one code submitted %d times at once must succeed exactly once", counts, n)
	}
}

func TestAttack_SameBackupCodeSentConcurrentlyIsAcceptedOnce(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"dana"}, "max_failures 100"), "reverse_proxy "+up.addr())), port)
	owner := newClient(t, port)
	r := login(owner, "dana", testPassword)
	expect(t, "login", r, http.StatusOK)
	secret := owner.api("GET", "setup", nil).json(t)["secret"].(string)
	r = owner.api("POST", "setup", map[string]string{"code": totp(t, secret, time.Now())})
	expect(t, "setup", r, http.StatusOK)
	backup := r.json(t)["backup_codes"].([]any)[0].(string)

	const n = 6 // within the hashing queue, so every request is evaluated
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = newClient(t, port)
		expect(t, "password step", login(clients[i], "dana", testPassword), http.StatusOK)
	}
	counts := parallel(n, func(i int) int {
		return clients[i].api("POST", "2fa", map[string]string{"code": backup}).status
	})
	if counts[http.StatusOK] != 1 {
		t.Fatalf("outcomes %v: one backup code used %d times at once must succeed exactly once", counts, n)
	}
	if !logShows(c, `"event":"backup_code","outcome":"ok"`) {
		t.Error("backup-code use not in the audit log")
	}
}

func TestAttack_ForgedXForwardedForDoesNotMoveThePerIPCounter(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	guess := func(port, i int) int {
		return newClient(t, port).do("POST", prefix+"/login",
			map[string]string{"username": fmt.Sprintf("user%d", i), "password": "x"},
			"Accept", "application/json", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)).status
	}

	// Untrusted peer: Caddy ignores the header, so every guess counts
	// against 127.0.0.1 and the fourth address is refused.
	c := newCaddy(t)
	port := freePort(t)
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"erin"}, "max_failures_per_ip 3"), "reverse_proxy "+up.addr())), port)
	for i := 0; i < 3; i++ {
		guess(port, i)
	}
	if s := guess(port, 3); s != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For escaped the per-IP limit: status %d, want 429", s)
	}
	if !logShows(c, `"client_ip":"127.0.0.1"`) {
		t.Error("audit log does not show the real client address")
	}

	// Control: with the peer trusted, Caddy's client_ip follows the header,
	// and the counter follows client_ip.
	trusted := newCaddy(t)
	port2 := freePort(t)
	globals := "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n"
	trusted.start(trusted.caddyfile(globals, site(port2, trusted.totpAuth("totp.db", []string{"erin"}, "max_failures_per_ip 3"), "reverse_proxy "+up.addr())), port2)
	for i := 0; i < 4; i++ {
		if s := guess(port2, i); s != http.StatusUnauthorized {
			t.Fatalf("trusted proxy, address %d: status %d, want 401", i, s)
		}
	}
}

func TestAttack_FloodOfGuessesDoesNotStarveSignedInUsers(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"fay"}), "reverse_proxy "+up.addr())), port)
	fay := newClient(t, port)
	enroll(t, fay, "fay")

	stop := make(chan struct{})
	var flood sync.WaitGroup
	var mu sync.Mutex
	floodStatus := map[int]int{}
	for w := 0; w < 40; w++ {
		flood.Add(1)
		go func() {
			defer flood.Done()
			cl := newClient(t, port)
			for i := 0; i < 50; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// A fresh user name each time, so no per-user lock cuts it short.
				s := cl.do("POST", prefix+"/login", map[string]string{"username": fmt.Sprintf("nobody-%d-%d", w, i), "password": "x"},
					"Accept", "application/json").status
				mu.Lock()
				floodStatus[s]++
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(3 * time.Second)
	ok, total := 0, 0
	for time.Now().Before(deadline) {
		total++
		if r := fay.do("GET", "/app", nil, "Accept", "application/json"); r.status == http.StatusOK {
			ok++
		}
	}
	close(stop)
	flood.Wait()
	if ok != total || total < 20 {
		t.Fatalf("signed-in requests during the flood: %d of %d succeeded", ok, total)
	}
	if floodStatus[http.StatusServiceUnavailable]+floodStatus[http.StatusTooManyRequests] == 0 {
		t.Fatalf("flood outcomes %v: the excess was not refused", floodStatus)
	}
}

func TestAttack_AuditLogNamesEventsAndHoldsNoSecrets(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"gus"}), "reverse_proxy "+up.addr())), port)
	b := newClient(t, port)
	login(b, "gus", "not-the-password-42")
	expect(t, "login", login(b, "gus", testPassword), http.StatusOK)
	secret := b.api("GET", "setup", nil).json(t)["secret"].(string)
	now := time.Now()
	code := totp(t, secret, now)
	r := b.api("POST", "setup", map[string]string{"code": code})
	expect(t, "setup", r, http.StatusOK)
	var codes []string
	for _, v := range r.json(t)["backup_codes"].([]any) {
		codes = append(codes, v.(string))
	}
	b.api("POST", "logout", map[string]string{})

	for _, want := range []string{
		`"event":"password","outcome":"failure","user":"gus","client_ip":"127.0.0.1"`,
		`"event":"enrollment","outcome":"ok","user":"gus"`,
		`"event":"sign_in","outcome":"ok","user":"gus"`,
		`"event":"logout","outcome":"ok","user":"gus"`,
	} {
		if !logShows(c, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	log := c.log.String()
	for _, secretish := range append([]string{secret, testPassword, "not-the-password-42", code}, codes...) {
		if strings.Contains(log, secretish) {
			t.Errorf("log holds a secret (%.4s…)", secretish)
		}
	}
}
