package gateway

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Access policies (SPEC §11): who may pass a block, the groups sent
// upstream, and the answer to a signed-in user who may not pass.

// GroupsHeader carries the user's groups upstream, comma-separated. Any
// spelling of it in the client's request is removed.
const GroupsHeader = "Remote-Groups"

var groupsHeaderKey = headerKey(GroupsHeader)

// groupsHeaderName is GroupsHeader in canonical form.
var groupsHeaderName = http.CanonicalHeaderKey(GroupsHeader)

// FactorHeader tells the upstream how the user proved the sign-in: totp,
// backup_code or password (a password alone, where 2FA is optional). Any
// spelling of it in the client's request is removed.
const FactorHeader = "Remote-Auth-Factor"

var factorHeaderKey = headerKey(FactorHeader)

// factorHeaderName is FactorHeader in canonical form.
var factorHeaderName = http.CanonicalHeaderKey(FactorHeader)

// upstreamFactor is the FactorHeader value of a session proven by f: a
// code that confirmed a new authenticator is a TOTP code.
func upstreamFactor(f Factor) string {
	if f == FactorEnrollment {
		return FactorTOTP.String()
	}
	return f.String()
}

// Policy says who may pass: a user named in Users, or a member of one of
// Groups. Either one suffices. The zero Policy lets every user pass.
type Policy struct {
	// Users are the canonical names of users who may pass. Default: none.
	Users []string
	// Groups are names of groups (Config.Groups) whose members may pass.
	// Default: none.
	Groups []string
}

// open reports whether p lets every user pass.
func (p Policy) open() bool { return len(p.Users) == 0 && len(p.Groups) == 0 }

// checkPolicy reports the first name in p that cannot work with groups.
func checkPolicy(p Policy, groups map[string][]string, where string) error {
	for _, u := range p.Users {
		if u == "" || u != CanonicalUser(u) {
			return fmt.Errorf("%s: user name %q is not canonical: use lower case without surrounding spaces", where, u)
		}
	}
	for _, name := range p.Groups {
		if _, ok := groups[name]; !ok {
			return fmt.Errorf("%s: group %q is not defined: add `group %s <user>...` to the same totp_auth block", where, name, name)
		}
	}
	return nil
}

// checkGroups reports the first group definition that cannot work.
func checkGroups(groups map[string][]string) error {
	for name, members := range groups {
		if !validName(name) {
			return fmt.Errorf("group name %q may hold only letters, digits, '_' and '-'", name)
		}
		if len(members) == 0 {
			return fmt.Errorf("group %s has no members: name at least one user", name)
		}
		for _, m := range members {
			if m == "" || m != CanonicalUser(m) {
				return fmt.Errorf("group %s: member %q is not canonical: use lower case without surrounding spaces", name, m)
			}
		}
	}
	return nil
}

// membership maps each user to the sorted names of their groups.
func membership(groups map[string][]string) map[string][]string {
	out := make(map[string][]string)
	for name, members := range groups {
		for _, m := range members {
			out[m] = append(out[m], name)
		}
	}
	for _, gs := range out {
		sort.Strings(gs)
	}
	return out
}

// allows reports whether p lets user pass.
func (g *Gateway) allows(p Policy, user string) bool {
	if p.open() {
		return true
	}
	for _, u := range p.Users {
		if u == user {
			return true
		}
	}
	for _, want := range p.Groups {
		for _, have := range g.memberOf[user] {
			if want == have {
				return true
			}
		}
	}
	return false
}

// groupsValue is what GroupsHeader says for user: "" without groups.
func (g *Gateway) groupsValue(user string) string { return g.groupsOf[user] }

// groupsValues joins each user's groups once, for groupsValue.
func groupsValues(memberOf map[string][]string) map[string]string {
	out := make(map[string]string, len(memberOf))
	for user, groups := range memberOf {
		out[user] = strings.Join(groups, ",")
	}
	return out
}

// verifyAdmits reports whether s may pass a verify request: only a
// session proven with a second factor, whatever this block requires of
// its own pages (SPEC §12).
func verifyAdmits(s Session) bool { return s.Level >= LevelTwoFactor }

// forbidden answers a signed-in user whom the policy does not let pass:
// 403, with a page naming the user and offering to sign out or to sign in
// as someone else (never a redirect, so never a loop).
func (g *Gateway) forbidden(w http.ResponseWriter, r *http.Request, user string) {
	g.audit(r, EventAccess, OutcomeForbidden, user)
	if wantsJSON(r) || !acceptsHTML(r) {
		w.Header().Set("Cache-Control", "no-store")
		jsonError(w, http.StatusForbidden, codeForbidden)
		return
	}
	g.securityHeaders(w)
	g.render(w, r, http.StatusForbidden, "forbidden", page{Title: "Not allowed", User: user,
		Redirect: SafeRedirect(r.URL.RequestURI())})
}

// getSwitch is where a signed-in user goes to sign out or to sign in as
// someone else, from a page that could not offer the forms itself (a
// verify answer shown on another site).
func (g *Gateway) getSwitch(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSessionInRecovery(w, r)
	if !ok {
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"user": s.User})
		return
	}
	g.render(w, r, http.StatusOK, "switch", page{Title: "Signed in as " + s.User, User: s.User,
		Redirect: g.safeRedirect(r, r.URL.Query().Get("redirect"))})
}
