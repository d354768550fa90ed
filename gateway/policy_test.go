package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/totp-auth/totp_auth/gateway"
)

// policyEnv lets bob and the admins group (alice) pass; carol may not.
func policyEnv(t *testing.T, mods ...func(*gateway.Config)) *env {
	t.Helper()
	return newEnv(t, append([]func(*gateway.Config){func(c *gateway.Config) {
		c.Users["carol"] = c.Users["alice"]
		c.Groups = map[string][]string{"admins": {"alice", "carol-not"}, "ops": {"alice"}}
		c.Allow = gateway.Policy{Users: []string{"bob"}, Groups: []string{"admins"}}
	}}, mods...)...)
}

func noUpstream(t *testing.T, e *env, what string) {
	t.Helper()
	select {
	case <-e.upstream:
		t.Fatalf("%s reached the upstream", what)
	default:
	}
}

func TestPolicy_AllowedUsersAndGroupsPass(t *testing.T) {
	e := policyEnv(t)
	for _, user := range []string{"alice", "bob"} {
		c := signedIn(t, e, user)
		if r := c.getJSON("/app"); r.StatusCode != 200 {
			t.Fatalf("%s: %d %s", user, r.StatusCode, r.Body)
		}
		<-e.upstream
	}
}

func TestPolicy_UserOutsideTheListGets403AndNeverReachesUpstream(t *testing.T) {
	e := policyEnv(t)
	c := signedIn(t, e, "carol")
	r := c.getJSON("/app")
	if r.StatusCode != http.StatusForbidden || r.JSON["error"] != "forbidden" {
		t.Fatalf("API client: %d %s, want 403 {\"error\":\"forbidden\"}", r.StatusCode, r.Body)
	}
	noUpstream(t, e, "a forbidden API request")
	r = c.getHTML("/app?x=1")
	if r.StatusCode != http.StatusForbidden || r.Header.Get("Location") != "" {
		t.Fatalf("browser: %d Location %q, want a 403 page, not a redirect", r.StatusCode, r.Header.Get("Location"))
	}
	noUpstream(t, e, "a forbidden browser request")
	for _, want := range []string{`<strong class="user">carol</strong>`, `action="/.totp-auth/logout"`, "Sign in as someone else", "Sign out",
		`name="redirect" value="/app?x=1"`} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("403 page lacks %q:\n%s", want, r.Body)
		}
	}
	if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("403 page without the security headers: %v", r.Header)
	}
}

// "Sign in as someone else" signs carol out and leads to the login page
// with the target kept; the login page then shows the form (no loop), and
// bob who may pass ends where carol was refused.
func TestPolicy_SignInAsSomeoneElseLeadsToLoginWithoutALoop(t *testing.T) {
	e := policyEnv(t)
	carol := signedIn(t, e, "carol")
	bob := e.client()
	secret, _ := bob.enroll("bob")
	bob.postJSON("/.totp-auth/logout", nil)

	r := carol.postForm("/app?x=1", "/.totp-auth/logout", url.Values{"redirect": {"/app?x=1"}})
	want := "/.totp-auth/login?redirect=" + url.QueryEscape("/app?x=1")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != want {
		t.Fatalf("sign in as someone else: %d Location %q, want 303 %s", r.StatusCode, r.Header.Get("Location"), want)
	}
	if r := carol.getHTML(want); r.StatusCode != 200 || !strings.Contains(r.Body, `name="password"`) {
		t.Fatalf("login page after switching: %d, want the sign-in form\n%s", r.StatusCode, r.Body)
	}
	if r := carol.getJSON("/app"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("carol still signed in after switching: %d", r.StatusCode)
	}
	// The same browser, now as bob.
	carol.jar = bob.jar
	carol.http.Jar = bob.jar
	carol.signIn("bob", secret)
	if r := carol.getJSON("/app?x=1"); r.StatusCode != 200 {
		t.Fatalf("bob after switching: %d %s", r.StatusCode, r.Body)
	}
}

func TestPolicy_GroupsGoUpstreamAndClientSpellingsAreStripped(t *testing.T) {
	e := policyEnv(t)
	alice := signedIn(t, e, "alice")
	bob := signedIn(t, e, "bob")
	spoof := []string{"Remote-Groups", "remote-groups", "Remote_Groups", "REMOTE_GROUPS", "remote_groups"}
	for _, tt := range []struct {
		c    *client
		want []string
	}{{alice, []string{"admins,ops"}}, {bob, nil}} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/app", nil)
		req.Header.Set("Accept", "application/json")
		for _, name := range spoof {
			req.Header[name] = []string{"root"}
		}
		if r := tt.c.do(req); r.StatusCode != 200 {
			t.Fatalf("%d %s", r.StatusCode, r.Body)
		}
		h := <-e.upstream
		var got []string
		for name, vals := range h {
			if strings.ReplaceAll(strings.ToLower(name), "_", "-") == "remote-groups" {
				got = append(got, name+": "+strings.Join(vals, "|"))
			}
		}
		switch {
		case tt.want == nil && len(got) != 0:
			t.Errorf("a user without groups: upstream got %q, want no groups header", got)
		case tt.want != nil && (len(got) != 1 || got[0] != "Remote-Groups: "+tt.want[0]):
			t.Errorf("upstream got %q, want exactly Remote-Groups: %s", got, tt.want[0])
		}
	}
}

// A user who may not pass gets the same answers at the password step as
// one who may, and their failures count the same: the 403 comes only
// after a complete sign-in.
func TestPolicy_PasswordStepDisclosesNothing(t *testing.T) {
	e := policyEnv(t, func(c *gateway.Config) { c.MaxFailures = 2 })
	answers := map[string]string{}
	for _, user := range []string{"alice", "carol"} {
		c := e.client()
		r := c.login(user, testPassword)
		answers[user+" right"] = r.Status + " " + r.Body
		r = c.login(user, "wrong")
		answers[user+" wrong"] = r.Status + " " + r.Body
		r = c.login(user, "wrong")
		r = c.login(user, testPassword)
		answers[user+" locked"] = r.Status
	}
	for _, k := range []string{"right", "wrong", "locked"} {
		if answers["alice "+k] != answers["carol "+k] {
			t.Errorf("%s password: alice gets %q, carol %q", k, answers["alice "+k], answers["carol "+k])
		}
	}
	if !strings.HasPrefix(answers["carol locked"], "429") {
		t.Errorf("carol after max_failures: %s, want 429 (her failures count)", answers["carol locked"])
	}
}

func TestPolicy_ConfigErrorsNameTheProblem(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*gateway.Config)
		want string
	}{
		{"unknown group", func(c *gateway.Config) { c.Allow = gateway.Policy{Groups: []string{"admins"}} }, `group "admins" is not defined`},
		{"empty group", func(c *gateway.Config) { c.Groups = map[string][]string{"admins": {}} }, "group admins has no members"},
		{"odd member", func(c *gateway.Config) { c.Groups = map[string][]string{"admins": {"Alice"}} }, "not canonical"},
		{"odd user", func(c *gateway.Config) { c.Allow = gateway.Policy{Users: []string{" bob"}} }, "not canonical"},
		{"odd portal domain", func(c *gateway.Config) { c.PortalDomains = []string{"*.example.com"} }, "plain domain"},
	} {
		cfg := gateway.Config{Store: newEnv(t).store}
		tt.mod(&cfg)
		_, err := gateway.New(cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New = %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}
