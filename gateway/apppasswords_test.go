package gateway_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
)

// appEnv is a gateway with app_passwords on.
func appEnv(t testing.TB, mods ...func(*gateway.Config)) *env {
	return newEnv(t, append([]func(*gateway.Config){func(c *gateway.Config) {
		c.AppPasswords = true
		c.Groups = map[string][]string{"family": {"alice"}}
	}}, mods...)...)
}

// makeAppPassword signs user in (enrolling them) and makes an app password
// with fields over the JSON API; it returns the id and the value.
func (c *client) makeAppPassword(fields map[string]string) (id, value string) {
	t := c.e.t
	t.Helper()
	body := map[string]string{"password": testPassword, "name": "Phone – DAVx5"}
	for k, v := range fields {
		body[k] = v
	}
	r := c.postJSON("/.totp-auth/app-passwords", body)
	if r.StatusCode != 200 {
		t.Fatalf("make app password: %d %s", r.StatusCode, r.Body)
	}
	return r.JSON["id"].(string), r.JSON["app_password"].(string)
}

// basic sends method path with Basic credentials and extra headers, as a
// sync client would (no browser Accept).
func (e *env) basic(method, path, user, value string, headers ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.SetBasicAuth(user, value)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.client().do(req)
}

// lastUpstream returns the headers of the last request the upstream saw.
func (e *env) lastUpstream() http.Header {
	e.t.Helper()
	select {
	case h := <-e.upstream:
		return h
	default:
		e.t.Fatal("the upstream saw no request")
		return nil
	}
}

func enrolledWithAppPassword(t *testing.T, e *env, fields map[string]string) (c *client, secret, id, value string) {
	t.Helper()
	c = e.client()
	secret, _ = c.enroll("alice")
	id, value = c.makeAppPassword(fields)
	return c, secret, id, value
}

func TestAppPassword_PassesAsUserAndNoAuthorizationReachesUpstream(t *testing.T) {
	e := appEnv(t)
	_, _, _, value := enrolledWithAppPassword(t, e, nil)
	if len(strings.ReplaceAll(value, "-", "")) != 20 || strings.Count(value, "-") != 4 {
		t.Fatalf("value %q is not five groups of four", value)
	}
	for len(e.upstream) > 0 {
		<-e.upstream
	}
	r := e.basic("GET", "/files/a.txt", "Alice", value, "Authorization-Extra", "x")
	if r.StatusCode != 200 || r.Body != "upstream /files/a.txt user=alice" {
		t.Fatalf("got %d %q", r.StatusCode, r.Body)
	}
	if sc := r.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("an app-password request got cookies: %v", sc)
	}
	h := e.lastUpstream()
	if h.Get("Authorization") != "" {
		t.Errorf("upstream saw Authorization %q", h.Get("Authorization"))
	}
	if h.Get("Remote-Groups") != "family" {
		t.Errorf("Remote-Groups = %q, want family", h.Get("Remote-Groups"))
	}
}

func TestAppPassword_AcceptedWithoutDashesInAnyCase(t *testing.T) {
	e := appEnv(t)
	_, _, _, value := enrolledWithAppPassword(t, e, nil)
	for _, v := range []string{strings.ToUpper(value), strings.ReplaceAll(value, "-", ""), strings.ReplaceAll(value, "-", " ")} {
		if r := e.basic("GET", "/", "alice", v); r.StatusCode != 200 {
			t.Errorf("%q: %d %s", v, r.StatusCode, r.Body)
		}
	}
}

func TestAppPassword_OwnPasswordIsNeverAccepted(t *testing.T) {
	e := appEnv(t)
	enrolledWithAppPassword(t, e, nil)
	r := e.basic("GET", "/", "alice", testPassword)
	if r.StatusCode != 401 || r.JSON["error"] != "invalid_credentials" {
		t.Fatalf("own password: %d %s", r.StatusCode, r.Body)
	}
	if got := r.Header.Get("WWW-Authenticate"); got != `Basic realm="Test Lab", charset="UTF-8"` {
		t.Errorf("WWW-Authenticate = %q", got)
	}
}

func TestAppPassword_RequestWithoutSessionGetsBasicChallenge(t *testing.T) {
	e := appEnv(t, func(c *gateway.Config) { c.Issuer = `Lab "North" \ 2` })
	r := e.client().getJSON("/app")
	if r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") != `Basic realm="Lab \"North\" \\ 2", charset="UTF-8"` {
		t.Fatalf("API client: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	if r := e.client().getHTML("/app"); r.StatusCode != http.StatusFound || r.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("browser: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	off := newEnv(t)
	if r := off.client().getJSON("/app"); r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("block without app_passwords: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
}

func TestAppPassword_BasicIsIgnoredWithoutAppPasswords(t *testing.T) {
	e := appEnv(t)
	_, _, _, value := enrolledWithAppPassword(t, e, nil)
	other := newEnv(t)
	other.store = e.store
	// A block without app_passwords on the same store never reads Basic.
	gw, err := gateway.New(gateway.Config{Users: map[string][]byte{"alice": passwordHash(t)}, Store: e.store, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth("alice", value)
	w := &recorder{header: http.Header{}}
	if _, ok := gw.Handle(w, req); ok || w.status != 401 {
		t.Fatalf("Basic on a block without app_passwords: ok=%v status %d", ok, w.status)
	}
}

// recorder is a minimal ResponseWriter for calling Handle directly.
type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int)   { r.status = s }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return len(b), nil
}

func TestAppPassword_WrongOnesLockTheUserAndTheLockRefusesTheRightOne(t *testing.T) {
	e := appEnv(t)
	_, _, _, value := enrolledWithAppPassword(t, e, nil)
	wrong := "abcd-efgh-jkmn-pqrs-tvwx"
	for i := 0; i < gateway.DefaultMaxFailures; i++ {
		if r := e.basic("GET", "/", "alice", wrong); r.StatusCode != 401 {
			t.Fatalf("wrong %d: %d %s", i, r.StatusCode, r.Body)
		}
	}
	r := e.basic("GET", "/", "alice", value)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || r.JSON["error"] != "locked" {
		t.Fatalf("right one while locked: %d %q %s", r.StatusCode, r.Header.Get("Retry-After"), r.Body)
	}
	// The lock is the user's: the login is locked too.
	if r := e.client().postJSON("/.totp-auth/login", map[string]string{"username": "alice", "password": testPassword}); r.StatusCode != 429 {
		t.Fatalf("login after app-password failures: %d", r.StatusCode)
	}
	e.clock.Advance(gateway.DefaultLockout + time.Second)
	if r := e.basic("GET", "/", "alice", value); r.StatusCode != 200 {
		t.Fatalf("after the lock: %d %s", r.StatusCode, r.Body)
	}
}

func TestAppPassword_LockFromAnotherPathIsHonouredFromTheStore(t *testing.T) {
	e := appEnv(t)
	_, _, _, value := enrolledWithAppPassword(t, e, nil)
	// A lock this gateway never met (another instance, another block)
	// reaches the view within a second.
	lim := []account.Limit{{Key: account.UserCounter.Key("alice"), Max: 1}}
	a, _, err := account.TakeAttempt(e.store, e.clock.Now(), time.Hour, lim)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := account.FailAttempt(e.store, a, e.clock.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		e.clock.Advance(time.Second)
		r := e.basic("GET", "/", "alice", value)
		if r.StatusCode == http.StatusTooManyRequests {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock in the store never refused the app password: %d", r.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAppPassword_CorrectOneResetsNoFailureCounter(t *testing.T) {
	e := appEnv(t)
	_, _, _, value := enrolledWithAppPassword(t, e, nil)
	for i := 0; i < gateway.DefaultMaxFailures-1; i++ {
		e.basic("GET", "/", "alice", "wrong")
	}
	if r := e.basic("GET", "/", "alice", value); r.StatusCode != 200 {
		t.Fatalf("right one: %d", r.StatusCode)
	}
	e.basic("GET", "/", "alice", "wrong")
	if r := e.basic("GET", "/", "alice", value); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after max failures with a right one between: %d, want 429", r.StatusCode)
	}
}

func TestAppPassword_WrongOnesCountTowardTheClientLock(t *testing.T) {
	e := appEnv(t, func(c *gateway.Config) { c.MaxFailuresPerIP = 3 })
	_, _, _, value := enrolledWithAppPassword(t, e, nil)
	for _, u := range []string{"nobody", "carol", "dave"} {
		if r := e.basic("GET", "/", u, value); r.StatusCode != 401 {
			t.Fatalf("%s: %d", u, r.StatusCode)
		}
	}
	if r := e.basic("GET", "/", "alice", value); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("from a locked client: %d, want 429", r.StatusCode)
	}
	var failures, locked int
	for _, entry := range e.logs.FilterMessage("totp_auth app_password").All() {
		switch entry.ContextMap()["outcome"] {
		case "failure":
			failures++
		case "locked":
			locked++
		}
	}
	if failures != 3 || locked != 1 {
		t.Errorf("audited %d failures and %d locked refusals, want 3 and 1", failures, locked)
	}
}

// rawGet sends a request line exactly as written, as a client that does
// not clean paths would.
func (e *env) rawGet(target, user, value string) int {
	e.t.Helper()
	u, _ := url.Parse(e.srv.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest("GET", e.srv.URL, nil)
	req.SetBasicAuth(user, value)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nConnection: close\r\n\r\n", target, u.Host, req.Header.Get("Authorization"))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAppPassword_PathPrefixHoldsAgainstEveryWayOut(t *testing.T) {
	e := appEnv(t)
	_, _, _, value := enrolledWithAppPassword(t, e, map[string]string{"path_prefix": "/dav/"})
	for target, want := range map[string]int{
		"/dav":                 200,
		"/dav/":                200,
		"/dav/cal/home.ics":    200,
		"/dav/a?x=../../b":     200,
		"/davsecret":           403,
		"/":                    403,
		"/dav/../admin":        403,
		"/dav/%2e%2e/admin":    403,
		"/dav/%2E%2E/admin":    403,
		"/dav/..%2fadmin":      403,
		"/dav%2f..%2fadmin":    403,
		"/dav%2Fx":             403,
		"//dav/x":              403,
		"/dav//x":              403,
		"/dav/./x":             403,
		"/dav/x/..":            403,
		"/dav\\..\\admin":      403,
		"/dav/%5c..%5cadmin":   403,
		"/DAV/x":               403,
		"/dav/%00/x":           403,
		"/.totp-auth/whoami":   303, // to the login: an app password signs no one in
		"/dav/%252e%252e/x":    200, // a literal "%2e%2e" segment, below /dav
		"/dav/cal%20home/x.vc": 200,
	} {
		if got := e.rawGet(target, "alice", value); got != want {
			t.Errorf("%s: %d, want %d", target, got, want)
		}
	}
	if r := e.basic("GET", "/davsecret", "alice", value); r.JSON["error"] != "out_of_scope" {
		t.Errorf("out of scope answer: %s", r.Body)
	}
}

func TestAppPassword_ReadOnlyAllowsOnlyReadingMethods(t *testing.T) {
	e := appEnv(t)
	_, _, _, value := enrolledWithAppPassword(t, e, map[string]string{"read_only": "true"})
	for _, m := range []string{"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"} {
		if r := e.basic(m, "/dav/", "alice", value); r.StatusCode != 200 {
			t.Errorf("%s: %d", m, r.StatusCode)
		}
	}
	for _, m := range []string{"PUT", "POST", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "PATCH"} {
		if r := e.basic(m, "/dav/", "alice", value); r.StatusCode != 403 {
			t.Errorf("%s: %d, want 403", m, r.StatusCode)
		}
	}
	for _, h := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"} {
		if r := e.basic("GET", "/dav/", "alice", value, h, "DELETE"); r.StatusCode != 403 || r.JSON["error"] != "out_of_scope" {
			t.Errorf("GET with %s: %d %s", h, r.StatusCode, r.Body)
		}
	}
	if r := e.basic("GET", "/dav/?_method=DELETE", "alice", value); r.StatusCode != 403 {
		t.Errorf("GET with _method: %d", r.StatusCode)
	}
}

func TestAppPassword_JSONBooleanAndScopeAreListed(t *testing.T) {
	e := appEnv(t)
	c := e.client()
	c.enroll("alice")
	req, _ := http.NewRequest("POST", e.srv.URL+"/.totp-auth/app-passwords", strings.NewReader(
		`{"password":"`+testPassword+`","name":"Backup","read_only":true,"path_prefix":"/backup","expires":"2027-01-31T00:00:00Z"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	r := c.do(req)
	if r.StatusCode != 200 || r.JSON["name"] != "Backup" {
		t.Fatalf("make: %d %s", r.StatusCode, r.Body)
	}
	r = c.getJSON("/.totp-auth/app-passwords")
	list := r.JSON["app_passwords"].([]any)
	if len(list) != 1 {
		t.Fatalf("list: %s", r.Body)
	}
	got := list[0].(map[string]any)
	want := map[string]any{"id": r.JSON["app_passwords"].([]any)[0].(map[string]any)["id"], "name": "Backup", "created": "2026-11-24T12:00:07Z",
		"last_used": nil, "last_used_ip": nil, "expires": "2027-01-31T00:00:00Z", "read_only": true, "path_prefix": "/backup"}
	if toString(got) != toString(want) {
		t.Errorf("listed %s\nwant     %s", toString(got), toString(want))
	}
	if strings.Contains(r.Body, "hash") {
		t.Errorf("the list shows a hash: %s", r.Body)
	}
}

func TestAppPassword_MakingOneChecksPasswordFieldsAndLevel(t *testing.T) {
	e := appEnv(t)
	c := e.client()
	c.enroll("alice")
	r := c.postJSON("/.totp-auth/app-passwords", map[string]string{"password": "wrong", "name": "x"})
	if r.StatusCode != 401 || r.JSON["error"] != "invalid_credentials" {
		t.Fatalf("wrong password: %d %s", r.StatusCode, r.Body)
	}
	for field, body := range map[string]map[string]string{
		"name":        {"name": ""},
		"expires":     {"name": "x", "expires": "2020-01-01T00:00:00Z"},
		"read_only":   {"name": "x", "read_only": "maybe"},
		"path_prefix": {"name": "x", "path_prefix": "dav"},
	} {
		body["password"] = testPassword
		r := c.postJSON("/.totp-auth/app-passwords", body)
		if r.StatusCode != 400 || r.JSON["error"] != "bad_request" || r.JSON["field"] != field {
			t.Errorf("bad %s: %d %s", field, r.StatusCode, r.Body)
		}
	}
	for _, p := range []string{"/dav/../x", "/dav//x", "/dav%2fx", "/d?x", "/a\\b"} {
		if r := c.postJSON("/.totp-auth/app-passwords", map[string]string{"password": testPassword, "name": "x", "path_prefix": p}); r.StatusCode != 400 {
			t.Errorf("path_prefix %q: %d", p, r.StatusCode)
		}
	}
	// The wrong password counted.
	for i := 0; i < gateway.DefaultMaxFailures-1; i++ {
		c.postJSON("/.totp-auth/app-passwords", map[string]string{"password": "wrong", "name": "x"})
	}
	if r := c.postJSON("/.totp-auth/app-passwords", map[string]string{"password": testPassword, "name": "x"}); r.StatusCode != 429 {
		t.Errorf("after max wrong passwords: %d, want 429", r.StatusCode)
	}

	// A password-only session (require_2fa false) may not make one.
	opt := appEnv(t, func(c *gateway.Config) { c.Optional2FA = true })
	oc := opt.client()
	if r := oc.postJSON("/.totp-auth/login", map[string]string{"username": "bob", "password": testPassword}); r.JSON["status"] != "ok" {
		t.Fatalf("login: %s", r.Body)
	}
	if r := oc.postJSON("/.totp-auth/app-passwords", map[string]string{"password": testPassword, "name": "x"}); r.StatusCode != 403 || r.JSON["error"] != "second_factor_required" {
		t.Errorf("level 1: %d %s", r.StatusCode, r.Body)
	}

	// A block without app_passwords has none to make.
	off := newEnv(t)
	oc = off.client()
	oc.enroll("alice")
	for _, r := range []response{
		oc.postJSON("/.totp-auth/app-passwords", map[string]string{"password": testPassword, "name": "x"}),
		oc.getJSON("/.totp-auth/app-passwords"),
	} {
		if r.StatusCode != 404 || r.JSON["error"] != "app_passwords_off" {
			t.Errorf("off: %d %s", r.StatusCode, r.Body)
		}
	}
}

func TestAppPassword_RevokedOrExpiredOneIsRefused(t *testing.T) {
	e := appEnv(t)
	c, _, id, value := enrolledWithAppPassword(t, e, nil)
	_, later := c.makeAppPassword(map[string]string{"name": "Laptop", "expires": e.clock.Now().Add(30 * time.Minute).Format(time.RFC3339)})
	if r := c.postJSON("/.totp-auth/app-passwords/revoke", map[string]string{"id": id}); r.StatusCode != 200 || r.JSON["status"] != "ok" {
		t.Fatalf("revoke: %d %s", r.StatusCode, r.Body)
	}
	if r := c.postJSON("/.totp-auth/app-passwords/revoke", map[string]string{"id": id}); r.StatusCode != 404 {
		t.Fatalf("revoke again: %d", r.StatusCode)
	}
	if r := e.basic("GET", "/", "alice", value); r.StatusCode != 401 {
		t.Errorf("revoked: %d", r.StatusCode)
	}
	if r := e.basic("GET", "/", "alice", later); r.StatusCode != 200 {
		t.Errorf("other one: %d", r.StatusCode)
	}
	e.clock.Advance(30 * time.Minute)
	if r := e.basic("GET", "/", "alice", later); r.StatusCode != 401 {
		t.Errorf("expired: %d", r.StatusCode)
	}
	if r := c.getJSON("/.totp-auth/app-passwords"); len(r.JSON["app_passwords"].([]any)) != 0 {
		t.Errorf("list after revoke and expiry: %s", r.Body)
	}
}

func TestAppPassword_CannotUseTheAccountAPI(t *testing.T) {
	e := appEnv(t)
	_, _, _, value := enrolledWithAppPassword(t, e, nil)
	for _, p := range []string{"/.totp-auth/whoami", "/.totp-auth/app-passwords", "/.totp-auth/account"} {
		req, _ := http.NewRequest("GET", e.srv.URL+p, nil)
		req.SetBasicAuth("alice", value)
		req.Header.Set("Accept", "application/json")
		if r := e.client().do(req); r.StatusCode != 401 {
			t.Errorf("%s: %d", p, r.StatusCode)
		}
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/.totp-auth/app-passwords", strings.NewReader(`{"password":"x","name":"y"}`))
	req.SetBasicAuth("alice", value)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if r := e.client().do(req); r.StatusCode != 401 {
		t.Errorf("making one with one: %d", r.StatusCode)
	}
}

func TestAppPassword_PolicyOfTheBlockApplies(t *testing.T) {
	e := appEnv(t, func(c *gateway.Config) { c.Allow = gateway.Policy{Users: []string{"bob"}} })
	c := e.client()
	c.enroll("alice")
	// alice may not pass this block, but may make app passwords for others.
	_, value := c.makeAppPassword(nil)
	if r := e.basic("GET", "/", "alice", value); r.StatusCode != 403 || r.JSON["error"] != "forbidden" {
		t.Fatalf("policy: %d %s", r.StatusCode, r.Body)
	}
}

func TestAppPassword_SessionRequestLosesBasicButKeepsOtherSchemes(t *testing.T) {
	e := appEnv(t)
	c := e.client()
	c.enroll("alice")
	for len(e.upstream) > 0 {
		<-e.upstream
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/x", nil)
	req.SetBasicAuth("mallory", "whatever")
	req.Header.Add("Authorization", "Bearer upstream-token")
	if r := c.do(req); r.StatusCode != 200 || r.Body != "upstream /x user=alice" {
		t.Fatalf("session request: %d %s", r.StatusCode, r.Body)
	}
	if got := e.lastUpstream().Values("Authorization"); len(got) != 1 || got[0] != "Bearer upstream-token" {
		t.Errorf("upstream saw Authorization %q", got)
	}
}

func TestAppPassword_RevokedByTheRulesThatEndAnAccountsTrust(t *testing.T) {
	for name, revoke := range map[string]func(t *testing.T, e *env, c *client, secret string){
		"disable 2FA": func(t *testing.T, e *env, c *client, secret string) {
			e.clock.Advance(30 * time.Second)
			if r := c.postJSON("/.totp-auth/disable", map[string]string{"password": testPassword, "code": e.code(secret, 0)}); r.StatusCode != 200 {
				t.Fatalf("disable: %d %s", r.StatusCode, r.Body)
			}
		},
		"reset-2fa": func(t *testing.T, e *env, _ *client, _ string) {
			if err := e.store.UpdateAccount("alice", func(a *account.Account) error { return a.ResetTwoFactor() }); err != nil {
				t.Fatal(err)
			}
		},
		"remove": func(t *testing.T, e *env, _ *client, _ string) {
			if err := e.store.UpdateAccount("alice", func(a *account.Account) error { return a.Remove() }); err != nil {
				t.Fatal(err)
			}
		},
		"passwd": func(t *testing.T, e *env, _ *client, _ string) {
			if _, err := account.ChangePassword(e.store, "alice", passwordHash(t)); err != nil {
				t.Fatal(err)
			}
		},
		"user line removed": func(t *testing.T, e *env, _ *client, _ string) {
			if err := account.MarkConfigUsers(e.store, map[string]bool{"alice": true}); err != nil {
				t.Fatal(err)
			}
			if _, err := account.ForgetConfigUsers(e.store, map[string]bool{"bob": true}); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := appEnv(t)
			c, secret, _, value := enrolledWithAppPassword(t, e, nil)
			revoke(t, e, c, secret)
			if r := e.basic("GET", "/", "alice", value); r.StatusCode != 401 {
				t.Fatalf("after %s: %d", name, r.StatusCode)
			}
			if a, _ := e.store.Account("alice"); len(a.AppPasswords) != 0 {
				t.Errorf("after %s the store keeps %d app passwords", name, len(a.AppPasswords))
			}
		})
	}
}

func TestAppPassword_ChangingOneselfsPasswordRevokesThem(t *testing.T) {
	e := appEnv(t)
	databaseUser(e, "dave")
	c := e.client()
	secret, _ := c.enroll("dave")
	_, value := c.makeAppPassword(nil)
	if r := e.basic("GET", "/", "dave", value); r.StatusCode != 200 {
		t.Fatalf("app password before the change: %d %s", r.StatusCode, r.Body)
	}
	e.clock.Advance(30 * time.Second)
	if r := c.postJSON("/.totp-auth/password", map[string]string{"current": testPassword, "new": newPassword, "code": e.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("change own password: %d %s", r.StatusCode, r.Body)
	}
	if r := e.basic("GET", "/", "dave", value); r.StatusCode != 401 {
		t.Fatalf("app password after the user changed their password: %d, want 401", r.StatusCode)
	}
}

func TestAppPassword_ChangedUserLineVoidsIt(t *testing.T) {
	e := appEnv(t)
	_, _, _, value := enrolledWithAppPassword(t, e, nil)
	other := []byte("$2a$04$" + strings.Repeat("A", 53))
	gw, err := gateway.New(gateway.Config{AppPasswords: true, Users: map[string][]byte{"alice": other}, Store: e.store, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth("alice", value)
	w := &recorder{header: http.Header{}}
	if _, ok := gw.Handle(w, req); ok || w.status != 401 {
		t.Fatalf("after the user line changed: ok=%v %d", ok, w.status)
	}
}

func TestAppPassword_SignOutEverywhereKeepsIt(t *testing.T) {
	e := appEnv(t)
	c, _, _, value := enrolledWithAppPassword(t, e, nil)
	if r := c.postJSON("/.totp-auth/logout-all", nil); r.StatusCode != 200 {
		t.Fatalf("logout-all: %d", r.StatusCode)
	}
	if r := e.basic("GET", "/", "alice", value); r.StatusCode != 200 {
		t.Fatalf("after sign-out everywhere: %d", r.StatusCode)
	}
}

func TestAppPassword_LastUseIsWrittenOffThePathAtMostOnceAMinute(t *testing.T) {
	var counted *countingStore
	e := appEnv(t, func(c *gateway.Config) {
		counted = &countingStore{Store: c.Store}
		c.Store = counted
	})
	c, _, _, value := enrolledWithAppPassword(t, e, nil)
	counted.accounts.Store(0)
	counted.counters.Store(0)
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest("GET", e.srv.URL+"/", nil)
		req.SetBasicAuth("alice", value)
		if r := e.client().do(req); r.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, r.StatusCode)
		}
	}
	waitFor(t, func() bool { a, _ := e.store.Account("alice"); return !a.AppPasswords[0].LastUsed.IsZero() })
	if n := counted.accounts.Load(); n != 1 {
		t.Errorf("20 requests within a minute wrote the account %d times, want 1", n)
	}
	if n := counted.counters.Load(); n != 0 {
		t.Errorf("right app passwords wrote counters %d times", n)
	}
	e.clock.Advance(time.Minute)
	e.basic("GET", "/", "alice", value)
	// The count goes up as the write starts; what the page shows is there
	// once the write is done.
	waitFor(t, func() bool { a, _ := e.store.Account("alice"); return a.AppPasswords[0].LastUsed.Equal(e.clock.Now()) })
	if n := counted.accounts.Load(); n != 2 {
		t.Errorf("a use a minute later made %d writes in all, want 2", n)
	}
	r := c.getJSON("/.totp-auth/app-passwords")
	row := r.JSON["app_passwords"].([]any)[0].(map[string]any)
	if row["last_used"] != e.clock.Now().UTC().Format(time.RFC3339) || row["last_used_ip"] != "127.0.0.1" {
		t.Errorf("last use: %v from %v", row["last_used"], row["last_used_ip"])
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAppPassword_EventsCountEveryOutcome(t *testing.T) {
	var mu sync.Mutex
	seen := map[gateway.Outcome]int{}
	e := appEnv(t, func(c *gateway.Config) {
		c.Events = func(ev gateway.Event) {
			if ev.Kind == gateway.EventAppPassword {
				mu.Lock()
				seen[ev.Outcome]++
				mu.Unlock()
			}
		}
	})
	_, _, _, value := enrolledWithAppPassword(t, e, map[string]string{"read_only": "true"})
	e.basic("GET", "/", "alice", value)
	e.basic("PUT", "/", "alice", value)
	e.basic("GET", "/", "alice", "wrong")
	mu.Lock()
	defer mu.Unlock()
	if seen[gateway.OutcomeOK] != 1 || seen[gateway.OutcomeOutOfScope] != 1 || seen[gateway.OutcomeFailure] != 1 {
		t.Errorf("events: %v", seen)
	}
}

func TestAppPassword_PageShowsItOnceToTheSessionThatMadeIt(t *testing.T) {
	e := appEnv(t)
	c := e.client()
	c.enroll("alice")
	page := c.getHTML("/.totp-auth/account")
	if !strings.Contains(page.Body, "New app password") || !strings.Contains(page.Body, `action="/.totp-auth/app-passwords"`) {
		t.Fatalf("account page has no app-password form:\n%s", page.Body)
	}
	r := c.postForm("/.totp-auth/account", "/.totp-auth/app-passwords", url.Values{
		"password": {testPassword}, "name": {"Phone – DAVx5"}, "path_prefix": {"/dav"}, "read_only": {"true"},
		"expires": {"2027-03-01"}, "form_token": {"tok-1"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/app-passwords/new" {
		t.Fatalf("post: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	shown := c.getHTML("/.totp-auth/app-passwords/new")
	value := between(shown.Body, "<code>", "</code>")
	if shown.StatusCode != 200 || len(value) != 24 || !strings.Contains(shown.Body, `data-copy="`+value+`"`) {
		t.Fatalf("shown page: %d\n%s", shown.StatusCode, shown.Body)
	}
	if again := c.getHTML("/.totp-auth/app-passwords/new"); !strings.Contains(again.Body, value) {
		t.Errorf("a reload within the minute lost the value")
	}
	if r := e.basic("PROPFIND", "/dav/x", "alice", value); r.StatusCode != 200 {
		t.Errorf("the shown value does not work: %d", r.StatusCode)
	}
	// Another session of the same user, with the cookie copied, sees nothing.
	other := e.client()
	other.signIn("alice", secretOf(t, e))
	var ck *http.Cookie
	u, _ := url.Parse(e.srv.URL + "/.totp-auth/app-passwords/new")
	for _, k := range c.jar.Cookies(u) {
		if k.Name == "totp_auth_session_app" {
			ck = k
		}
	}
	if ck == nil {
		t.Fatal("no cookie carries the new app password to its page")
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/.totp-auth/app-passwords/new", nil)
	req.Header.Set("Accept", "text/html")
	req.AddCookie(ck)
	if r := other.do(req); r.StatusCode != http.StatusGone || strings.Contains(r.Body, value) {
		t.Errorf("another session: %d", r.StatusCode)
	}
	// The form posted again (a reload of the answer) makes no second one.
	vals := url.Values{"password": {testPassword}, "name": {"again"}, "form_token": {"tok-1"}}
	if r := c.postForm("/.totp-auth/account", "/.totp-auth/app-passwords", vals); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.totp-auth/account" {
		t.Errorf("resubmission: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	listed := c.getHTML("/.totp-auth/account")
	if strings.Count(listed.Body, "app-passwords/revoke") != 1 || !strings.Contains(listed.Body, "read-only, /dav") || !strings.Contains(listed.Body, "Phone – DAVx5") {
		t.Errorf("account page list:\n%s", listed.Body)
	}
	e.clock.Advance(time.Minute)
	if r := c.getHTML("/.totp-auth/app-passwords/new"); r.StatusCode != http.StatusGone || strings.Contains(r.Body, value) {
		t.Errorf("after a minute: %d", r.StatusCode)
	}
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	j := strings.Index(s, to)
	if j < 0 {
		return ""
	}
	return s[:j]
}

func secretOf(t *testing.T, e *env) string {
	t.Helper()
	a, err := e.store.Account("alice")
	if err != nil {
		t.Fatal(err)
	}
	return a.TOTPSecret
}

func TestAppPassword_EveryWrongOneGetsTheSameAnswer(t *testing.T) {
	e := appEnv(t, func(c *gateway.Config) { c.MaxFailures = 100; c.MaxFailuresPerIP = 100 })
	_, _, id, value := enrolledWithAppPassword(t, e, nil)
	c := e.client()
	var answers []string
	for _, try := range [][2]string{
		{"alice", "abcd-efgh-jkmn-pqrs-tvwx"}, // wrong value
		{"alice", testPassword},               // the user's own password
		{"nobody", value},                     // unknown user
		{"bob", value},                        // another user's name
		{"alice", ""},                         // empty
	} {
		r := e.basic("GET", "/x", try[0], try[1])
		answers = append(answers, fmt.Sprintf("%d %s %q %q", r.StatusCode, strings.TrimSpace(r.Body), r.Header.Get("WWW-Authenticate"), r.Header.Get("Cache-Control")))
	}
	if r := c.postJSON("/.totp-auth/app-passwords/revoke", map[string]string{"id": id}); r.StatusCode != 401 {
		t.Fatalf("revoke without a session: %d", r.StatusCode)
	}
	for i, a := range answers {
		if a != answers[0] {
			t.Errorf("answer %d differs:\n%s\n%s", i, a, answers[0])
		}
	}
	if !strings.HasPrefix(answers[0], `401 {"error":"invalid_credentials"}`) {
		t.Errorf("answer: %s", answers[0])
	}
}
