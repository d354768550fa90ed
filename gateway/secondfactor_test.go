package gateway_test

import (
	"sync"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// The second-factor step: an accepted time step is never accepted again
// (SPEC §4 rule 2).

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
