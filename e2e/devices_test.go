package e2e_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/internal/pgtest"
)

// Where a user is signed in and "Remember this device" (SPEC §16), against
// a real Caddy: the JSON API, the CLI and two PostgreSQL instances. The
// browser's side is in devices_browser_test.go.

// sessionIDs returns the ids GET sessions lists for cl, the current one first.
func sessionIDs(t *testing.T, cl *client) (current string, others []string) {
	t.Helper()
	r := cl.api("GET", "sessions", nil)
	expect(t, "GET sessions", r, http.StatusOK)
	for _, v := range r.json(t)["sessions"].([]any) {
		row := v.(map[string]any)
		if row["current"] == true {
			current = row["id"].(string)
		} else {
			others = append(others, row["id"].(string))
		}
	}
	return current, others
}

// signInRemembering signs user in on cl with password and a code, asking
// to remember the browser.
func signInRemembering(t *testing.T, cl *client, user, password string, app *authenticator) {
	t.Helper()
	r := login(cl, user, password)
	expect(t, "login", r, http.StatusOK)
	if got := r.json(t)["status"]; got != "2fa_required" {
		t.Fatalf("login: status %v, want 2fa_required", got)
	}
	r = cl.do("POST", prefix+"/2fa", map[string]any{"code": app.code(), "remember": true}, "Accept", "application/json")
	expect(t, "2fa with remember", r, http.StatusOK)
	if !strings.Contains(strings.Join(r.header.Values("Set-Cookie"), "\n"), "totp_auth_session_device=") {
		t.Fatalf("no device cookie after asking to remember: %v", r.header.Values("Set-Cookie"))
	}
}

func TestDevices_CLIListsAndEndsSessionsAndPasswdForgetsDevices(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	cfg := c.caddyfile("", site(port, c.defaultBlock(nil, "remember_device 30d"), "reverse_proxy "+up.addr()))
	c.start(cfg, port)
	op := &operator{t: t, c: c, cfg: cfg, port: port, running: true}
	op.must(testPassword+"\n", "user", "add", "bob", "--cost", "4")

	laptop, phone := newClient(t, port), newClient(t, port)
	e := enroll(t, laptop, "bob")
	app := &authenticator{t: t, secret: e.secret, last: e.codeTime.Unix() / 30}
	signInRemembering(t, phone, "bob", testPassword, app)
	laptopID, others := sessionIDs(t, laptop)
	if len(others) != 1 {
		t.Fatalf("the laptop sees %d other sessions, want the phone's", len(others))
	}
	phoneID := others[0]

	// The CLI lists the same ids as the API, and the remembered device.
	out := op.must("", "user", "sessions", "bob")
	for _, want := range []string{laptopID, phoneID, "Go client", "Remembered devices", "totp"} {
		expectOutput(t, "user sessions", out, want)
	}
	if !strings.Contains(c.log.String(), `"uri":"/totp-auth/users/sessions?db=`) {
		t.Error("user sessions did not go through Caddy's admin API")
	}

	// An unknown id: a non-zero exit that says so.
	expectOutput(t, "user signout --session of an unknown id", op.refused("", "user", "signout", "bob", "--session", "0000000000000001"), "has no session")
	expect(t, "the phone after a refused signout", phone.do("GET", "/app", nil, "Accept", "application/json"), http.StatusOK)

	// The phone's session ends; the laptop's goes on; the phone stays
	// remembered, so its next sign-in asks only the password.
	expectOutput(t, "user signout --session", op.must("", "user", "signout", "bob", "--session", phoneID), "Ended session "+phoneID)
	refusedWithin(t, phone, time.Second, "a session ended with user signout --session")
	expect(t, "the laptop after the phone's signout", laptop.do("GET", "/app", nil, "Accept", "application/json"), http.StatusOK)
	r := login(phone, "bob", testPassword)
	if got := r.json(t)["status"]; r.status != http.StatusOK || got != "ok" {
		t.Fatalf("remembered phone after its session ended: %d %v, want ok without a code", r.status, got)
	}
	if out := op.must("", "user", "sessions", "bob"); !regexp.MustCompile(`remembered_device`).MatchString(out) {
		t.Errorf("user sessions does not show the remembered_device sign-in:\n%s", out)
	}
	// With Caddy stopped the commands read the database file themselves.
	stopped := &operator{t: t, c: c, cfg: cfg, port: port}
	if out := stopped.must("", "user", "sessions", "bob", "--json"); !strings.Contains(out, `"id": "`+laptopID+`"`) {
		t.Errorf("user sessions --json with Caddy stopped lacks the laptop's session %s:\n%s", laptopID, out)
	}

	// passwd forgets every device: the device cookie is rejected.
	const newPassword = "a new password for bob"
	op.must(newPassword+"\n", "user", "passwd", "bob", "--cost", "4")
	r = login(phone, "bob", newPassword)
	if got := r.json(t)["status"]; r.status != http.StatusOK || got != "2fa_required" {
		t.Fatalf("the phone's device cookie after passwd: %d %v, want 2fa_required", r.status, got)
	}
	if out := op.must("", "user", "sessions", "bob"); strings.Contains(out, "Remembered devices") || strings.Contains(out, laptopID) {
		t.Errorf("after passwd user sessions still lists:\n%s", out)
	}
}

func TestPostgres_EndingASessionOnOneInstanceIsRefusedOnTheOtherWithinASecond(t *testing.T) {
	t.Parallel()
	c := newCluster(t, pgtest.Database(t), []string{"erin"}, "require_2fa false", "remember_device 30d")
	laptop, phone := passwordSession(t, c.aPort, "erin"), passwordSession(t, c.aPort, "erin")
	phoneOnB := on(phone, c.bPort)
	expect(t, "the phone's session on B", phoneOnB.do("GET", "/app", nil, "Accept", "application/json"), http.StatusOK)
	_, others := sessionIDs(t, laptop)
	if len(others) != 1 {
		t.Fatalf("the laptop sees %d other sessions, want 1", len(others))
	}
	expect(t, "end the phone's session on A", laptop.api("POST", "sessions/end", map[string]string{"id": others[0]}), http.StatusOK)
	took := refusedWithin(t, phoneOnB, time.Second, "a session ended on the other instance")
	t.Logf("ending a session reached the other instance in %s", took)

	// "Everywhere else", from B.
	third := passwordSession(t, c.bPort, "erin")
	thirdOnA := on(third, c.aPort)
	laptopOnB := on(laptop, c.bPort)
	r := laptopOnB.api("POST", "sessions/end-others", map[string]string{})
	expect(t, "end-others on B", r, http.StatusOK)
	if n := r.json(t)["ended"]; n != float64(1) {
		t.Errorf("end-others ended %v, want 1 (the phone's was over already)", n)
	}
	refusedWithin(t, thirdOnA, time.Second, "a session ended by end-others on the other instance")
	expect(t, "the laptop on A", laptop.do("GET", "/app", nil, "Accept", "application/json"), http.StatusOK)
}
