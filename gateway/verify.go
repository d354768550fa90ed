package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Forward auth for other servers (SPEC §12): GET <prefix>/verify for
// Caddy's forward_auth and Traefik (X-Forwarded-*), GET
// <prefix>/verify/nginx for nginx auth_request (X-Original-*). Every
// refusal is a 4xx or 5xx: no error path answers 2xx.

// verifyFlavor says which headers carry the original request.
type verifyFlavor int

const (
	forwardedHeaders verifyFlavor = iota // X-Forwarded-Method, -Proto, -Host, -Uri
	originalHeaders                      // X-Original-Method, X-Original-URL
)

func (g *Gateway) getVerify(w http.ResponseWriter, r *http.Request) {
	g.verify(w, r, forwardedHeaders)
}

func (g *Gateway) getVerifyNginx(w http.ResponseWriter, r *http.Request) {
	g.verify(w, r, originalHeaders)
}

// verifyPath reports whether sub (the path below the prefix) is a verify
// endpoint, and which.
func verifyPath(sub string) (verifyFlavor, bool) {
	switch sub {
	case "verify":
		return forwardedHeaders, true
	case "verify/nginx":
		return originalHeaders, true
	}
	return 0, false
}

func (g *Gateway) verify(w http.ResponseWriter, r *http.Request, flavor verifyFlavor) {
	h := w.Header()
	h["Cache-Control"] = []string{"no-store"}
	// The refusals are written out of line: this is every app request's
	// path through the portal, and its frame stays small.
	if len(g.portal) == 0 {
		g.verifyNotPortal(w, r)
		return
	}
	if !g.cfg.TrustedProxy(r) {
		g.verifyUntrusted(w, r)
		return
	}
	o, err := g.readOriginal(r, flavor)
	if err != nil {
		g.badVerify(w, r, err)
		return
	}
	app, err := g.verifyPolicy(r.URL.RawQuery, o.query)
	if err != nil {
		g.badVerify(w, r, err)
		return
	}
	self, ok := g.selfHost(r.Host)
	if !ok {
		g.badVerify(w, r, fmt.Errorf("the Host of the verify request, %q, is not the portal's own name under its portal domains: "+
			"make the proxy send the portal's name (Caddy: header_up Host {upstream_hostport}; nginx: proxy_set_header Host)", r.Host))
		return
	}
	now := g.cfg.Clock.Now()
	s, st, err := g.session(r, now)
	if err != nil {
		g.internalError(w, r, "check session", err)
		return
	}
	if s == nil || !verifyAdmits(*s) {
		g.verifySignIn(w, r, flavor, g.verifyPortalURL(r, self, "/login", o.url))
		return
	}
	if st.MustRegenerate {
		g.verifySignIn(w, r, flavor, g.verifyPortalURL(r, self, "/backup-codes", o.url))
		return
	}
	if !g.allows(g.cfg.Allow, s.User) || !g.allows(app, s.User) {
		g.verifyForbidden(w, r, s.User, self, o.url)
		return
	}
	g.activity.touch(s.ID, now, g.cfg.IdleTimeout)
	g.seen(s, now)
	// The groups header goes out even when empty: a proxy that copies it
	// onto the request then replaces whatever the client sent. The
	// values share one allocation, under keys already canonical.
	vals := []string{s.User, g.groupsValue(s.User), upstreamFactor(s.Factor)}
	h[g.userHeaderName] = vals[0:1:1]
	h[groupsHeaderName] = vals[1:2:2]
	h[factorHeaderName] = vals[2:3:3]
	w.WriteHeader(http.StatusOK)
}

// verifyPortalURL is the portal page that a refused verify request sends
// the client to, with the original URL to come back to. The sign-in page
// is on this server: its own origin, the name the caller used for it
// (self) with the scheme the caller reached it by, never the app's scheme
// (SPEC §12). Only an answer that sends the client elsewhere builds it.
func (g *Gateway) verifyPortalURL(r *http.Request, self, page, target string) string {
	// Caddy's {upstream_hostport} names the port even when it is the
	// scheme's own; the browser's URL does not.
	scheme, name := "http", strings.TrimSuffix(self, ":80")
	if r.TLS != nil {
		scheme, name = "https", strings.TrimSuffix(self, ":443")
	}
	return scheme + "://" + name + g.cfg.Prefix + page + "?redirect=" + url.QueryEscape(target)
}

// verifyNotPortal answers verify on a block that is not a portal.
func (g *Gateway) verifyNotPortal(w http.ResponseWriter, r *http.Request) {
	g.securityHeaders(w)
	g.problem(w, r, problem{status: http.StatusNotFound, code: codeNotFound, msg: "There is no such page."}, page{Title: "Not found"})
}

// verifyUntrusted answers a verify request from outside the server's
// trusted proxies.
func (g *Gateway) verifyUntrusted(w http.ResponseWriter, r *http.Request) {
	if g.verifyLog.allow(g.cfg.Clock.Now()) {
		g.cfg.Logger.Warn("totp_auth verify: refused a caller outside the server's trusted_proxies; add the proxy to trusted_proxies if it is yours",
			zap.String("remote_addr", r.RemoteAddr))
	}
	jsonError(w, http.StatusForbidden, codeUntrustedCaller)
}

// verifyForbidden answers a signed-in user whom the block's or the app's
// policy does not let through to target.
func (g *Gateway) verifyForbidden(w http.ResponseWriter, r *http.Request, user, self, target string) {
	g.audit(r, EventAccess, OutcomeForbidden, user, zap.String("url", target))
	if wantsJSON(r) || !acceptsHTML(r) {
		jsonError(w, http.StatusForbidden, codeForbidden)
		return
	}
	g.securityHeaders(w)
	g.renderPage(w, r, http.StatusForbidden, "forbidden", page{Title: "Not allowed", User: user,
		Continue: g.verifyPortalURL(r, self, "/switch", target)})
}

// selfHost is portalHost for the Host of verify requests, which is the
// same few names on every request: accepted answers are remembered (the
// portal domains are fixed for the life of a Gateway).
func (g *Gateway) selfHost(host string) (string, bool) {
	if self, ok := g.selfHosts.get(host); ok {
		return self, true
	}
	self, ok := g.portalHost(host)
	if ok && len(host) <= maxRedirectLen {
		g.selfHosts.put(host, self)
	}
	return self, ok
}

// verifySignIn sends the client to the portal: browsers with 302, other
// clients and nginx (which passes only 401 and 403 on) with 401; all with
// the same Location.
func (g *Gateway) verifySignIn(w http.ResponseWriter, r *http.Request, flavor verifyFlavor, location string) {
	w.Header().Set("Location", location)
	if flavor == forwardedHeaders && acceptsHTML(r) && !wantsJSON(r) {
		w.WriteHeader(http.StatusFound)
		return
	}
	jsonError(w, http.StatusUnauthorized, codeUnauthenticated)
}

// maxVerifyReason bounds the reason a refused verify call logs: it may
// quote a header of the client's, which can be as long as the server
// lets headers be.
const maxVerifyReason = 512

// badVerify answers a verify request whose headers cannot be believed.
func (g *Gateway) badVerify(w http.ResponseWriter, r *http.Request, err error) {
	if g.verifyLog.allow(g.cfg.Clock.Now()) {
		reason := err.Error()
		if len(reason) > maxVerifyReason {
			reason = strings.ToValidUTF8(reason[:maxVerifyReason], "") + "…"
		}
		g.cfg.Logger.Warn("totp_auth verify: bad request", zap.String("error", reason), zap.String("client_ip", g.cfg.ClientIP(r)))
	}
	jsonError(w, http.StatusBadRequest, codeBadRequest)
}

// logLimiter lets at most one line a second through, so that a flood of
// refused verify calls, which cost nothing else, cannot flood the log.
type logLimiter struct{ last atomic.Int64 }

func (l *logLimiter) allow(now time.Time) bool {
	sec := now.Unix()
	prev := l.last.Load()
	return prev != sec && l.last.CompareAndSwap(prev, sec)
}
