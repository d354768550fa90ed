package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Access policies (SPEC §11) in front of a real upstream: alice (admins)
// and bob (named) may pass, carol may not.
func startPolicySite(t *testing.T) (*caddyProc, *recorder, int) {
	t.Helper()
	c := newCaddy(t)
	up := newRecorder(t)
	port := freePort(t)
	// The server keeps client headers spelled Remote_Groups (Caddy drops
	// them by default), so that stripping them is proven to be totp_auth's.
	globals := fmt.Sprintf("\tservers 127.0.0.1:%d {\n\t\texpected_underscore_headers Remote_Groups remote_groups\n\t}\n", port)
	block := c.totpAuth("totp.db", []string{"alice", "bob", "carol"},
		"group admins alice", "group ops alice carol-other", "allow_users bob", "allow_groups admins")
	c.start(c.caddyfile(globals, site(port, block, "reverse_proxy "+up.addr())), port)
	return c, up, port
}

func TestPolicy_OnlyAllowedUsersReachTheUpstreamWithTheirGroups(t *testing.T) {
	t.Parallel()
	_, up, port := startPolicySite(t)
	alice, bob, carol := newClient(t, port), newClient(t, port), newClient(t, port)
	enroll(t, alice, "alice")
	enroll(t, bob, "bob")
	enroll(t, carol, "carol")

	r := alice.do("GET", "/app", nil, "Accept", "application/json",
		"Remote-Groups", "root", "remote-groups", "root", "Remote_Groups", "root", "remote_groups", "root")
	expect(t, "alice", r, http.StatusOK)
	if id := identity(recordedOf(t, r), "Remote-Groups"); len(id) != 1 || id[0] != "Remote-Groups: admins,ops" {
		t.Errorf("alice: upstream got %q, want only Remote-Groups: admins,ops", id)
	}
	r = bob.do("GET", "/app", nil, "Accept", "application/json", "Remote-Groups", "admins")
	expect(t, "bob", r, http.StatusOK)
	if id := identity(recordedOf(t, r), "Remote-Groups"); len(id) != 0 {
		t.Errorf("bob (in no group): upstream got %q, want no groups header", id)
	}

	before := up.count()
	r = carol.do("GET", "/app", nil, "Accept", "application/json")
	if r.status != http.StatusForbidden || strings.TrimSpace(string(r.body)) != `{"error":"forbidden"}` {
		t.Fatalf("carol (API): %d %s, want 403 {\"error\":\"forbidden\"}", r.status, r.body)
	}
	r = carol.do("GET", "/app?x=1", nil, "Accept", "text/html")
	if r.status != http.StatusForbidden || r.header.Get("Location") != "" {
		t.Fatalf("carol (browser): %d Location %q, want a 403 page", r.status, r.header.Get("Location"))
	}
	for _, want := range []string{"carol", "Sign in as someone else", "Sign out", prefix + "/logout"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("403 page lacks %q", want)
		}
	}
	if up.count() != before {
		t.Fatal("a forbidden request reached the upstream")
	}
}

// The groups header sent by the client as a trailer never reaches the
// upstream, in any spelling.
func TestPolicy_GroupsHeaderInTrailersIsStripped(t *testing.T) {
	t.Parallel()
	_, _, port := startPolicySite(t)
	alice := newClient(t, port)
	enroll(t, alice, "alice")
	for _, name := range []string{"Remote-Groups", "remote-groups", "Remote_Groups"} {
		pr, pw := io.Pipe()
		req, err := http.NewRequest("POST", alice.base+"/app", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json")
		req.Trailer = http.Header{name: nil}
		go func() {
			_, _ = pw.Write([]byte("body"))
			req.Trailer[name] = []string{"root"}
			pw.Close()
		}()
		resp, err := alice.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := response{status: resp.StatusCode, header: resp.Header, body: body}
		expect(t, "POST with a trailer "+name, r, http.StatusOK)
		got := recordedOf(t, r)
		for _, id := range identity(got, "Remote-Groups") {
			if strings.Contains(id, "root") {
				t.Errorf("trailer %s: the upstream got %q", name, id)
			}
		}
	}
}

// A user who may not pass gets the same answers at the password step as
// one who may: nothing tells who may pass.
func TestPolicy_PasswordStepAnswersAlikeForAllowedAndNot(t *testing.T) {
	t.Parallel()
	_, _, port := startPolicySite(t)
	for _, password := range []string{testPassword, "wrong password"} {
		a := login(newClient(t, port), "alice", password)
		c := login(newClient(t, port), "carol", password)
		if a.status != c.status || string(a.body) != string(c.body) {
			t.Errorf("password %q: alice gets %d %s, carol %d %s", password, a.status, a.body, c.status, c.body)
		}
	}
}

func TestPolicy_StartUpErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	for _, tt := range []struct {
		lines []string
		want  []string
	}{
		{[]string{"group admins alice", "allow_groups admins staff"}, []string{"allow_groups names group", "staff", "Caddyfile:14"}},
		{[]string{"allow_users"}, []string{"allow_users takes one or more values", "Caddyfile:"}},
		{[]string{"allow_groups"}, []string{"allow_groups takes one or more values", "Caddyfile:"}},
		{[]string{"group admins"}, []string{"group admins has no members", "Caddyfile:"}},
		{[]string{"portal https://example.com"}, []string{"plain domain", "Caddyfile:"}},
	} {
		cfg := c.caddyfile("", site(port, c.totpAuth("totp.db", nil, tt.lines...), "respond ok"))
		out, err := c.run("validate", "--config", c.writeConfig("Caddyfile", cfg), "--adapter", "caddyfile")
		if err == nil {
			t.Fatalf("caddy validate accepted %q:\n%s", tt.lines, out)
		}
		for _, want := range tt.want {
			if !strings.Contains(out, want) {
				t.Errorf("%q: caddy validate output lacks %q:\n%s", tt.lines, want, out)
			}
		}
	}
}
