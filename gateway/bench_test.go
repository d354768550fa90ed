package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// BenchmarkHandle_ValidSession is the cost totp_auth adds to every request
// that holds a session: cookie check, store read, header stripping.
func BenchmarkHandle_ValidSession(b *testing.B) {
	e := newEnv(b)
	c := e.client()
	c.enroll("alice")
	cookie := c.cookie("totp_auth_session")
	req := httptest.NewRequest("GET", "/app", nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("User-Agent", "bench")
	req.AddCookie(cookie)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := req.Clone(req.Context())
		w := httptest.NewRecorder()
		if _, ok := e.gw.Handle(w, r); !ok {
			b.Fatalf("request refused: %d", w.Code)
		}
	}
}

// BenchmarkHandle_AppPassword is the cost of one request with an app
// password (SPEC §15): Basic read and removed, keyed hash, lookup in the
// session state, scope, policy. Its last use is queued once a minute.
func BenchmarkHandle_AppPassword(b *testing.B) {
	e := appEnv(b)
	c := e.client()
	c.enroll("alice")
	_, value := c.makeAppPassword(map[string]string{"path_prefix": "/dav"})
	req := httptest.NewRequest("PROPFIND", "/dav/calendars/alice/", nil)
	req.SetBasicAuth("alice", value)
	req.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := req.Clone(req.Context())
		w := httptest.NewRecorder()
		if _, ok := e.gw.Handle(w, r); !ok {
			b.Fatalf("request refused: %d", w.Code)
		}
	}
}

// BenchmarkVerify_ValidSession is the cost of one forward-auth answer for
// a signed-in user: headers read and checked, session, policy.
func BenchmarkVerify_ValidSession(b *testing.B) {
	e := portalEnvB(b)
	c := e.client()
	c.enroll("alice")
	cookie := c.cookie("totp_auth_session")
	req := httptest.NewRequest("GET", "/.totp-auth/verify", nil)
	req.Host = portalHost
	for k, v := range forwarded() {
		req.Header.Set(k, v)
	}
	req.Header.Set(trustedMark, "yes")
	req.Header.Set("Accept", "text/html")
	req.AddCookie(cookie)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := req.Clone(req.Context())
		w := httptest.NewRecorder()
		if _, ok := e.gw.Handle(w, r); ok || w.Code != 200 {
			b.Fatalf("verify answered %d", w.Code)
		}
	}
}

// BenchmarkHandle_ValidSessionLastSeenDue is BenchmarkHandle_ValidSession
// at its worst for the session registry: 30 sessions, and the clock moves
// on by gateway.LastSeenEvery after each round over them, so every request
// finds its session's last-seen time due and queues a write (done in the
// background). writes/op is the account writes per request.
func BenchmarkHandle_ValidSessionLastSeenDue(b *testing.B) {
	counting := new(countingStore)
	e := newEnv(b, func(c *gateway.Config) {
		// Long enough that no session expires however long the run.
		c.SessionTTL, c.IdleTimeout = 1<<20*time.Hour, 1<<20*time.Hour
		counting.Store = c.Store
		c.Store = counting
	})
	first := e.client()
	secret, _ := first.enroll("alice")
	clients := []*client{first}
	for len(clients) < 30 {
		c := e.client()
		c.signIn("alice", secret)
		clients = append(clients, c)
	}
	var reqs []*http.Request
	for _, c := range clients {
		req := httptest.NewRequest("GET", "/app", nil)
		req.Header.Set("Accept", "text/html")
		req.AddCookie(c.cookie("totp_auth_session"))
		reqs = append(reqs, req)
	}
	e.gw.WaitLastSeen()
	counting.accounts.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if n%len(reqs) == 0 {
			e.clock.Advance(gateway.LastSeenEvery)
		}
		r := reqs[n%len(reqs)].Clone(reqs[0].Context())
		w := httptest.NewRecorder()
		if _, ok := e.gw.Handle(w, r); !ok {
			b.Fatalf("request refused: %d", w.Code)
		}
		n++
	}
	b.StopTimer()
	e.gw.WaitLastSeen()
	b.ReportMetric(float64(counting.accounts.Load())/float64(n), "writes/op")
}
