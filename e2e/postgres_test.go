package e2e_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/internal/pgtest"
	"github.com/totp-auth/totp_auth/storage/postgres"
)

// These tests run two Caddy instances on one real PostgreSQL database, with
// a third Caddy balancing between them (SPEC §13): the rules hold across
// instances exactly as within one.

func TestPostgres_HundredGuessesOverTwoInstancesEvaluateAtMostFive(t *testing.T) {
	t.Parallel()
	c := newCluster(t, pgtest.Database(t), []string{"alice"}, "max_failures_per_ip 1000")
	e := enroll(t, newClient(t, c.aPort), "alice")

	// 100 sign-ins waiting for a code, spread by the balancer.
	const n = 100
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = newClient(t, c.lbPort)
		expect(t, "password step", login(clients[i], "alice", testPassword), http.StatusOK)
	}
	// One failure makes the counter's row; hold it while the guesses
	// arrive, so that they all reach the counter at once.
	first := newClient(t, c.aPort)
	expect(t, "password step", login(first, "alice", testPassword), http.StatusOK)
	expect(t, "first wrong code", first.api("POST", "2fa", map[string]string{"code": "000000"}), http.StatusUnauthorized)
	held := lockRow(t, c.dsn, "counters", "key", "user:alice")
	wrong := totp(t, e.secret, e.codeTime.Add(-time.Hour))
	var counts map[int]int
	done := make(chan struct{})
	go func() {
		defer close(done)
		counts = parallel(n, func(i int) int {
			return clients[i].api("POST", "2fa", map[string]string{"code": wrong}).status
		})
	}()
	held.releaseAfterWaiters(2, 3*time.Second)
	<-done
	if counts[http.StatusUnauthorized] > 4 || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != n {
		t.Fatalf("outcomes %v: want at most 4 more guesses evaluated (401) after the first, the rest refused (429)", counts)
	}
	for _, p := range []*caddyProc{c.a, c.b} {
		if !logShows(p, `"event":"second_factor"`) && !logShows(p, `"outcome":"failure"`) {
			t.Error("the balancer sent no guess to one of the instances")
		}
	}
	for _, port := range []int{c.aPort, c.bPort} {
		if r := login(newClient(t, port), "alice", testPassword); r.status != http.StatusTooManyRequests {
			t.Fatalf("right password on instance :%d while locked: %d %s, want 429", port, r.status, r.body)
		}
	}
}

func TestPostgres_CodeSentToBothInstancesAtOnceIsAcceptedOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t, pgtest.Database(t), []string{"bob"}, "max_failures 100")
	e := enroll(t, newClient(t, c.aPort), "bob")

	const n = 12
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = newClient(t, []int{c.aPort, c.bPort}[i%2])
		expect(t, "password step", login(clients[i], "bob", testPassword), http.StatusOK)
	}
	code := totp(t, e.secret, e.codeTime.Add(30*time.Second))
	held := lockRow(t, c.dsn, "accounts", "name", "bob")
	var counts map[int]int
	done := make(chan struct{})
	go func() {
		defer close(done)
		counts = parallel(n, func(i int) int {
			return clients[i].api("POST", "2fa", map[string]string{"code": code}).status
		})
	}()
	held.releaseAfterWaiters(2, 3*time.Second)
	<-done
	if counts[http.StatusOK] != 1 {
		t.Fatalf("outcomes %v: one code sent %d times to two instances must succeed exactly once", counts, n)
	}
	// The code used on one instance is refused on the other later too.
	late := newClient(t, c.bPort)
	expect(t, "password step", login(late, "bob", testPassword), http.StatusOK)
	expect(t, "the same code replayed", late.api("POST", "2fa", map[string]string{"code": code}), http.StatusUnauthorized)
}

func TestPostgres_BackupCodeSentToBothInstancesAtOnceIsAcceptedOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t, pgtest.Database(t), []string{"dana"}, "max_failures 100")
	owner := newClient(t, c.aPort)
	expect(t, "login", login(owner, "dana", testPassword), http.StatusOK)
	secret := owner.api("GET", "setup", nil).json(t)["secret"].(string)
	r := owner.api("POST", "setup", map[string]string{"code": totp(t, secret, time.Now())})
	expect(t, "setup", r, http.StatusOK)
	backup := r.json(t)["backup_codes"].([]any)[0].(string)

	const n = 6 // within the hashing queues, so every request is evaluated
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = newClient(t, []int{c.aPort, c.bPort}[i%2])
		expect(t, "password step", login(clients[i], "dana", testPassword), http.StatusOK)
	}
	held := lockRow(t, c.dsn, "accounts", "name", "dana")
	var counts map[int]int
	done := make(chan struct{})
	go func() {
		defer close(done)
		counts = parallel(n, func(i int) int {
			return clients[i].api("POST", "2fa", map[string]string{"code": backup}).status
		})
	}()
	held.releaseAfterWaiters(2, 3*time.Second)
	<-done
	if counts[http.StatusOK] != 1 {
		t.Fatalf("outcomes %v: one backup code sent %d times to two instances must succeed exactly once", counts, n)
	}
}

// passwordSession signs user in with the password alone (require_2fa false) on port.
func passwordSession(t *testing.T, port int, user string) *client {
	t.Helper()
	cl := newClient(t, port)
	r := login(cl, user, testPassword)
	expect(t, "login", r, http.StatusOK)
	if got := r.json(t)["status"]; got != "ok" {
		t.Fatalf("login: status %v, want ok", got)
	}
	return cl
}

// gate returns the status of a request through the gate.
func gate(cl *client) int {
	return cl.do("GET", "/app", nil, "Accept", "application/json").status
}

// refusedWithin polls cl until the gate refuses it and returns how long
// that took, failing the test after d.
func refusedWithin(t *testing.T, cl *client, d time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		s := gate(cl)
		if s == http.StatusUnauthorized {
			return time.Since(start)
		}
		if s != http.StatusOK {
			t.Fatalf("%s: status %d while waiting for 401", what, s)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: still let through after %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPostgres_LogoutOnOneInstanceEndsTheSessionOnTheOtherWithinASecond(t *testing.T) {
	t.Parallel()
	c := newCluster(t, pgtest.Database(t), []string{"erin"}, "require_2fa false")
	onA := passwordSession(t, c.aPort, "erin")
	onB := on(onA, c.bPort)
	expect(t, "session on the other instance", onB.do("GET", "/app", nil, "Accept", "application/json"), http.StatusOK)
	expect(t, "logout", onA.api("POST", "logout", map[string]string{}), http.StatusOK)
	took := refusedWithin(t, onB, time.Second, "a logged-out session on the other instance")
	t.Logf("logout reached the other instance in %s", took)

	// logout-all, from the other side.
	first, second := passwordSession(t, c.bPort, "erin"), passwordSession(t, c.bPort, "erin")
	elsewhere := on(second, c.aPort)
	expect(t, "second session on the other instance", elsewhere.do("GET", "/app", nil, "Accept", "application/json"), http.StatusOK)
	expect(t, "logout-all", first.api("POST", "logout-all", map[string]string{}), http.StatusOK)
	refusedWithin(t, elsewhere, time.Second, "a session ended by logout-all on the other instance")
}

func TestPostgres_FailsClosedWhenTheListenerOrTheDatabaseGoesAndRecovers(t *testing.T) {
	t.Parallel()
	server, dsn := pgtest.Own(t) // stopped below: not the shared cluster
	c := newCluster(t, dsn, []string{"frank"}, "require_2fa false")
	s1 := passwordSession(t, c.aPort, "frank")
	s2 := passwordSession(t, c.aPort, "frank")
	s1OnB, s2OnB := on(s1, c.bPort), on(s2, c.bPort)
	for _, cl := range []*client{s1OnB, s2OnB} {
		expect(t, "session on B", cl.do("GET", "/app", nil, "Accept", "application/json"), http.StatusOK)
	}

	// The listening connections die; a logout while nobody listens must
	// still be in force on B at once: B asks the database until it
	// listens again.
	pgtest.Exec(t, dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", postgres.ListenerApplicationName)
	time.Sleep(50 * time.Millisecond)
	expect(t, "logout of s1 on A", s1.api("POST", "logout", map[string]string{}), http.StatusOK)
	if s := gate(s1OnB); s != http.StatusUnauthorized {
		t.Fatalf("s1 on B right after its logout, listener killed: status %d, want 401 (stale state)", s)
	}
	expect(t, "s2 on B without a listener", s2OnB.do("GET", "/app", nil, "Accept", "application/json"), http.StatusOK)

	// The database goes: B refuses rather than trust its memory.
	if err := server.Stop(); err != nil {
		t.Fatal(err)
	}
	hits := c.up.hits.Load()
	deadline := time.Now().Add(3 * time.Second)
	for gate(s2OnB) == http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("B still lets a session through 3s after the database stopped")
		}
		hits = c.up.hits.Load()
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		if s := gate(s2OnB); s < 500 {
			t.Fatalf("request %d with the database down: status %d, want a 5xx", i, s)
		}
	}
	if c.up.hits.Load() != hits {
		t.Fatal("a request reached the upstream while the database was down")
	}

	// The database comes back: B recovers without a restart.
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for gate(s2OnB) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("B did not let s2 through within 15s of the database's return")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := gate(s1OnB); s != http.StatusUnauthorized {
		t.Fatalf("s1 on B after the database's return: status %d, want 401", s)
	}
}
