package caddymodule

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway"
)

// policy turns groups, allow_users, allow_groups and portal into their
// gateway form: names canonical, lists present but empty refused.
func (t *TOTPAuth) policy() (map[string][]string, gateway.Policy, []string, error) {
	var groups map[string][]string
	if t.Groups != nil {
		groups = make(map[string][]string, len(t.Groups))
	}
	for name, members := range t.Groups {
		if len(members) == 0 {
			return nil, gateway.Policy{}, nil, fmt.Errorf("groups: group %s has no members: name at least one user", name)
		}
		canon := make([]string, len(members))
		for i, m := range members {
			canon[i] = gateway.CanonicalUser(m)
		}
		groups[name] = canon
	}
	if t.AllowUsers != nil && len(t.AllowUsers) == 0 {
		return nil, gateway.Policy{}, nil, fmt.Errorf("allow_users is an empty list, which would let nobody pass: name at least one user, or remove it to let every user pass")
	}
	if t.AllowGroups != nil && len(t.AllowGroups) == 0 {
		return nil, gateway.Policy{}, nil, fmt.Errorf("allow_groups is an empty list, which would let nobody pass: name at least one group, or remove it to let every user pass")
	}
	if t.Portal != nil && len(t.Portal) == 0 {
		return nil, gateway.Policy{}, nil, fmt.Errorf("portal is an empty list: name the domains whose URLs the portal may send browsers back to, or remove it")
	}
	var allow gateway.Policy
	for _, u := range t.AllowUsers {
		allow.Users = append(allow.Users, gateway.CanonicalUser(u))
	}
	allow.Groups = t.AllowGroups
	var portal []string
	for _, d := range t.Portal {
		canon, err := gateway.PortalDomain(d)
		if err != nil {
			return nil, gateway.Policy{}, nil, fmt.Errorf("portal: %w", err)
		}
		portal = append(portal, canon)
	}
	return groups, allow, portal, nil
}

// trustedProxy reports whether Caddy's server found the caller of r among
// its trusted_proxies, as it does before believing X-Forwarded-For.
func trustedProxy(r *http.Request) bool {
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	return trusted
}

// warnUncoveredPortal says at start which portal domains the session
// cookie does not reach: apps there would never be signed in.
func (t *TOTPAuth) warnUncoveredPortal(portal []string) {
	cd := strings.ToLower(strings.TrimPrefix(t.CookieDomain, "."))
	for _, d := range portal {
		if cd == "" || (d != cd && !strings.HasSuffix(d, "."+cd)) {
			t.logger.Warn("portal domain not covered by cookie_domain: apps under it never receive the session cookie, "+
				"so their verify requests are never signed in; set cookie_domain to a parent of it and of the portal's own name",
				zap.String("portal_domain", d), zap.String("cookie_domain", t.CookieDomain))
		}
	}
}
