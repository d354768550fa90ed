package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
)

// site is a route for host, as the Caddyfile builds a site block: a host
// matcher and a subroute with handlers; an empty host is a catch-all site.
func siteRoute(host string, handlers ...caddyhttp.MiddlewareHandler) caddyhttp.Route {
	rt := caddyhttp.Route{Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Subroute{Routes: caddyhttp.RouteList{{Handlers: handlers}}}}, Terminal: true}
	if host != "" {
		rt.MatcherSets = caddyhttp.MatcherSets{{caddyhttp.MatchHost{host}}}
	}
	return rt
}

func TestPortalCheck_ServerMustRefuseUnmatchedHosts(t *testing.T) {
	portal := &TOTPAuth{Portal: []string{"example.com"}}
	plain := &TOTPAuth{}
	respond := func(code string) caddyhttp.MiddlewareHandler {
		return &caddyhttp.StaticResponse{StatusCode: caddyhttp.WeakString(code)}
	}
	for _, tt := range []struct {
		name   string
		routes caddyhttp.RouteList
		ok     bool
	}{
		{"portal alone", caddyhttp.RouteList{siteRoute("auth.example.com", portal)}, false},
		{"portal and an app site", caddyhttp.RouteList{siteRoute("auth.example.com", portal), siteRoute("app.example.com", plain, respond("200"))}, false},
		{"catch-all answering 200", caddyhttp.RouteList{siteRoute("auth.example.com", portal), siteRoute("", respond(""))}, false},
		{"catch-all behind a plain gate", caddyhttp.RouteList{siteRoute("auth.example.com", portal), siteRoute("", plain, respond("421"))}, false},
		{"catch-all respond 421", caddyhttp.RouteList{siteRoute("auth.example.com", portal), siteRoute("", respond("421"))}, true},
		{"catch-all abort", caddyhttp.RouteList{siteRoute("auth.example.com", portal), siteRoute("", &caddyhttp.StaticResponse{Abort: true})}, true},
		{"catch-all error", caddyhttp.RouteList{siteRoute("auth.example.com", portal), siteRoute("", &caddyhttp.StaticError{})}, true},
		{"the portal is the catch-all", caddyhttp.RouteList{siteRoute("", portal, respond("200"))}, true},
		{"no portal", caddyhttp.RouteList{siteRoute("app.example.com", plain, respond("200"))}, true},
	} {
		got := !holdsPortal(tt.routes) || refusesUnmatched(tt.routes)
		if got != tt.ok {
			t.Errorf("%s: passes the check %v, want %v", tt.name, got, tt.ok)
		}
	}
}

func TestPortalCheck_ErrorNamesTheFix(t *testing.T) {
	for _, tt := range []struct {
		srv  *caddyhttp.Server
		want string
	}{
		{&caddyhttp.Server{Listen: []string{":8080"}}, "http://:8080 {\n\trespond 421\n}"},
		{&caddyhttp.Server{Listen: []string{":443"}, TLSConnPolicies: caddytls.ConnectionPolicies{{}}}, "https:// {\n\trespond 421\n}"},
	} {
		err := unmatchedPassesError("srv0", tt.srv)
		for _, want := range []string{"srv0", tt.srv.Listen[0], "portal block", `"allowed"`, "header_up Host", tt.want} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%s", want, err)
			}
		}
	}
}
