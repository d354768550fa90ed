package gateway_test

import (
	"net/http/httptest"
	"testing"
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
