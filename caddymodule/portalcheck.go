package caddymodule

import (
	"fmt"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
)

func init() {
	caddy.RegisterModule(portalCheck{})
}

// portalCheck refuses to start a configuration in which a server holding a
// portal block lets a request that no route matches through. Caddy answers
// such a request with an empty 200, and Caddy's forward_auth, nginx's
// auth_request and Traefik all read a 200 as "allowed": one missing line
// in an app proxy's configuration (no `header_up Host`, an upstream given
// by address, nginx without `proxy_set_header Host`) would send every
// verify request past the portal block and every visitor on to the app
// (SPEC §12).
//
// It is an app that nobody configures: a portal block loads it while the
// http app is provisioned, and it checks that app's servers when Caddy
// starts them, the first moment their routes are all in place. A portal
// path that a check reaches but which is not a verify endpoint is refused
// by the gateway itself.
type portalCheck struct {
	ctx caddy.Context
}

// CaddyModule returns the Caddy module information.
func (portalCheck) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "totp_auth_portals",
		New: func() caddy.Module { return new(portalCheck) },
	}
}

// Provision keeps the context, to find the http app at start.
func (c *portalCheck) Provision(ctx caddy.Context) error {
	c.ctx = ctx
	return nil
}

// requirePortalCheck makes sure the check runs with this configuration.
func requirePortalCheck(ctx caddy.Context) error {
	_, err := ctx.App("totp_auth_portals")
	return err
}

// Start checks every server of the http app that holds a portal block.
func (c *portalCheck) Start() error {
	app, err := c.ctx.App("http")
	if err != nil {
		return err
	}
	httpApp, ok := app.(*caddyhttp.App)
	if !ok {
		return fmt.Errorf("totp_auth: the http app is a %T, not Caddy's", app)
	}
	names := make([]string, 0, len(httpApp.Servers))
	for name := range httpApp.Servers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		srv := httpApp.Servers[name]
		if !holdsPortal(srv.Routes) || refusesUnmatched(srv.Routes) {
			continue
		}
		return unmatchedPassesError(name, srv)
	}
	return nil
}

// Stop does nothing: the check holds no resources.
func (c *portalCheck) Stop() error { return nil }

// unmatchedPassesError says which server lets unmatched requests through,
// and how to close it.
func unmatchedPassesError(name string, srv *caddyhttp.Server) error {
	scheme := "http"
	if len(srv.TLSConnPolicies) > 0 {
		scheme = "https"
	}
	catchAll := fmt.Sprintf("%s:// {\n\trespond 421\n}", scheme)
	if len(srv.Listen) == 1 {
		if _, port, ok := strings.Cut(srv.Listen[0], ":"); ok && port != "" && port != "80" && port != "443" {
			catchAll = fmt.Sprintf("%s://:%s {\n\trespond 421\n}", scheme, port)
		}
	}
	return fmt.Errorf("totp_auth: server %s (listening on %s) holds a portal block, but a request that none of its sites matches gets "+
		"an empty 200, which forward_auth, nginx auth_request and Traefik read as \"allowed\": a proxy whose verify request misses "+
		"the portal's site (forward_auth without header_up Host, an upstream given by address, nginx without proxy_set_header Host) "+
		"would let every visitor through. Add a site that refuses every other host after the portal's, such as\n\n%s\n\n"+
		"(in JSON: a last route of the server, without matchers, whose handler is static_response with status_code 421)",
		name, strings.Join(srv.Listen, ", "), catchAll)
}

// holdsPortal reports whether routes reach a totp_auth handler with
// portal domains.
func holdsPortal(routes caddyhttp.RouteList) bool {
	for _, rt := range routes {
		for _, h := range rt.Handlers {
			switch h := h.(type) {
			case *TOTPAuth:
				if len(h.Portal) > 0 {
					return true
				}
			case *caddyhttp.Subroute:
				if holdsPortal(h.Routes) {
					return true
				}
			}
		}
	}
	return false
}

// refusesUnmatched reports whether a request that no earlier route of
// routes matches is stopped: the last route has no matchers and stops
// every check that reaches it.
func refusesUnmatched(routes caddyhttp.RouteList) bool {
	if len(routes) == 0 {
		return false
	}
	last := routes[len(routes)-1]
	return len(last.MatcherSets) == 0 && stopsChecks(last.Handlers)
}

// stopsChecks reports whether handlers, run in order, stop every
// forward-auth check that reaches them: an error status, a closed
// connection, or a portal block (which answers a check anywhere but at
// verify with 400). Handlers that only set headers or variables may come
// first; anything else is not known to stop a check.
func stopsChecks(handlers []caddyhttp.MiddlewareHandler) bool {
	for _, h := range handlers {
		switch h := h.(type) {
		case *caddyhttp.StaticResponse:
			return h.Abort || h.StatusCode.Int() >= 400
		case *caddyhttp.StaticError:
			return h.StatusCode == "" || h.StatusCode.Int() >= 400
		case *TOTPAuth:
			return len(h.Portal) > 0
		case *caddyhttp.Subroute:
			return routesStop(h.Routes)
		case *headers.Handler, *caddyhttp.VarsMiddleware:
			continue
		default:
			return false
		}
	}
	return false
}

// routesStop reports whether routes stop every check: each route that
// may match does, up to one without matchers.
func routesStop(routes caddyhttp.RouteList) bool {
	for _, rt := range routes {
		if !stopsChecks(rt.Handlers) {
			return false
		}
		if len(rt.MatcherSets) == 0 {
			return true
		}
	}
	return false
}

// Interface guards
var (
	_ caddy.App         = (*portalCheck)(nil)
	_ caddy.Provisioner = (*portalCheck)(nil)
)
