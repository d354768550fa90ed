package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/internal/softkey"
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

// BenchmarkSecondFactor_Passkey is the server's cost of a passkey as the
// second factor: the request options, then the answer verified by
// go-webauthn (ES256) and recorded (challenge spent, counter stored). The
// password step before it and the authenticator's signing are not timed.
// Beside BenchmarkSecondFactor_TOTP it shows what a passkey sign-in costs.
func BenchmarkSecondFactor_Passkey(b *testing.B) {
	e := passkeyEnv(b)
	key := &softkey.Authenticator{}
	e.client().enrollPasskey("alice", key)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		// Each sign-in's answered challenge is remembered for as long as
		// a pending sign-in lasts; let the last one's time pass.
		e.clock.Advance(gateway.PendingTTL)
		c := e.client()
		c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword})
		b.StartTimer()
		options := c.options("/.totp-auth/2fa/options", nil)
		b.StopTimer()
		answer, err := key.Get(softkey.Ceremony{Origin: e.origin()}, options)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if r := c.postAnswer("/.totp-auth/2fa", answer); r.StatusCode != 200 {
			b.Fatalf("passkey: %d %s", r.StatusCode, r.Body)
		}
	}
}

// BenchmarkSecondFactor_TOTP is the same step with a TOTP code: the code
// checked and its time step recorded.
func BenchmarkSecondFactor_TOTP(b *testing.B) {
	e := passkeyEnv(b)
	secret, _ := e.client().enroll("alice")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		e.clock.Advance(30 * time.Second)
		c := e.client()
		c.postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword})
		code := e.code(secret, 0)
		b.StartTimer()
		if r := c.postJSON("/.totp-auth/2fa", map[string]string{"code": code}); r.StatusCode != 200 {
			b.Fatalf("totp: %d %s", r.StatusCode, r.Body)
		}
	}
}
