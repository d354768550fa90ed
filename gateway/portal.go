package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/totp-auth/totp_auth/gateway/account"
	"go.uber.org/zap"
	"golang.org/x/net/idna"
)

// Portal mode (SPEC §12): which absolute URLs the sign-in flow may send a
// browser back to. Every check of a host against the portal's domains goes
// through portalHost, and every absolute redirect through PortalTarget, so
// the rule lives in one place.

// maxRedirectLen bounds a redirect target; longer ones fall back to "/".
const maxRedirectLen = 2048

// PortalDomain returns the canonical form of a portal domain as configured:
// IDNA (lookup profile) ASCII, lower case, no trailing dot. It refuses
// anything that is not a plain domain name: a scheme, port, path, wildcard
// or IP address.
func PortalDomain(domain string) (string, error) {
	if domain == "" {
		return "", errors.New("empty portal domain")
	}
	if strings.ContainsAny(domain, "/:*@?#[]\\ \t") {
		return "", fmt.Errorf("portal domain %q must be a plain domain name such as example.com (no scheme, port, path or wildcard)", domain)
	}
	host, ok := asciiHost(domain)
	if !ok {
		return "", fmt.Errorf("portal domain %q is not a valid domain name", domain)
	}
	if !strings.Contains(host, ".") {
		return "", fmt.Errorf("portal domain %q has a single label: use a domain with a dot, such as example.com", domain)
	}
	if _, err := strconv.Atoi(strings.ReplaceAll(host, ".", "")); err == nil {
		return "", fmt.Errorf("portal domain %q is an IP address: use a domain name", domain)
	}
	return host, nil
}

// asciiHost maps a host name to its lower-case IDNA ASCII form, refusing
// what IDNA refuses, a trailing dot and anything but letters, digits, '-'
// and '.'.
func asciiHost(host string) (string, bool) {
	if host == "" || len(host) > 253 || strings.HasSuffix(host, ".") {
		return "", false
	}
	if plainHost(host) {
		return host, true
	}
	a, err := idna.Lookup.ToASCII(host)
	if err != nil || a == "" {
		return "", false
	}
	a = strings.ToLower(a)
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", false
		}
	}
	return a, true
}

// plainHost reports whether host is already what IDNA's lookup profile
// would return for it: lower-case ASCII letters, digits and '-' in labels
// of 1 to 63 characters that neither start nor end with '-' nor hold "--"
// in the third and fourth places. Such a name needs no mapping; anything else goes through IDNA.
func plainHost(host string) bool {
	for label := range strings.SplitSeq(host, ".") {
		n := len(label)
		// "--" in the third and fourth places marks punycode ("xn--")
		// and other reserved labels, which IDNA checks.
		if n == 0 || n > 63 || label[0] == '-' || label[n-1] == '-' || n >= 4 && label[2:4] == "--" {
			return false
		}
		for i := 0; i < n; i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// inDomains reports whether the ASCII host equals one of domains or lies
// below one on a label boundary: "evilexample.com" is not "example.com".
func inDomains(host string, domains []string) bool {
	for _, d := range domains {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// portalHost parses a host[:port] as sent in a Host or X-Forwarded-Host
// header and returns it with its host part in canonical form, if that
// host belongs to the portal's domains.
func (g *Gateway) portalHost(hostport string) (string, bool) {
	if hostport == "" || strings.ContainsAny(hostport, "@/\\?#, \t[]") || hasControl(hostport) {
		return "", false
	}
	host, port, hasPort := strings.Cut(hostport, ":")
	if hasPort && !validPort(port) {
		return "", false
	}
	a, ok := asciiHost(host)
	if !ok || !inDomains(a, g.portal) {
		return "", false
	}
	if hasPort {
		return a + ":" + port, true
	}
	return a, true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	n, _ := strconv.Atoi(p)
	return n > 0 && n <= 65535
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// PortalTarget returns target in canonical form if a portal with domains
// may send a browser there: an absolute http(s) URL (http only when
// allowHTTP) whose host equals one of domains or lies below one on a label
// boundary, without userinfo, backslash, control characters or spaces, and
// with an IDNA host that maps to lower-case ASCII. Otherwise ok is false.
func PortalTarget(target string, domains []string, allowHTTP bool) (string, bool) {
	if len(domains) == 0 || target == "" || len(target) > maxRedirectLen {
		return "", false
	}
	// Invalid UTF-8 has no single meaning: IDNA would map a stray byte to
	// a name the check would refuse when the target is used.
	if hasControl(target) || strings.ContainsAny(target, "\\ ") || !utf8.ValidString(target) {
		return "", false
	}
	u, err := url.Parse(target)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", false
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			return "", false
		}
	default:
		return "", false
	}
	// The authority as written must be exactly what was parsed: an '@'
	// or anything else url.Parse tolerates is refused, not interpreted.
	rest := target[len(u.Scheme)+len("://"):]
	if !strings.EqualFold(target[:len(u.Scheme)+3], u.Scheme+"://") {
		return "", false
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if authority != u.Host || strings.ContainsAny(authority, "@[]%") {
		return "", false
	}
	host, port := u.Hostname(), u.Port()
	if strings.HasSuffix(u.Host, ":") || (port != "" && !validPort(port)) {
		return "", false
	}
	a, ok := asciiHost(host)
	if !ok || !inDomains(a, domains) {
		return "", false
	}
	if port != "" {
		a += ":" + port
	}
	u.Host = a
	out := u.String()
	if len(out) > maxRedirectLen {
		return "", false
	}
	// What goes out must read back as the same host.
	if back, err := url.Parse(out); err != nil || back.Host != a || back.User != nil {
		return "", false
	}
	return out, true
}

// safeRedirect is SafeRedirect that, in portal mode, also accepts an
// absolute URL to one of the portal's domains (PortalTarget). It is applied
// where a target is received and again where it is used.
func (g *Gateway) safeRedirect(r *http.Request, target string) string {
	if len(g.portal) > 0 && !strings.HasPrefix(target, "/") {
		if abs, ok := PortalTarget(target, g.portal, r.TLS == nil); ok {
			return abs
		}
	}
	return SafeRedirect(target)
}

// holdForApp answers, instead of sending a signed-in browser back to the
// app at target (an absolute URL behind verify), when the app would only
// send it here again: a session without the second factor is asked for it
// (verify needs it even where this block does not), and a target the
// session cookie does not reach gets a page saying so, not a redirect
// loop. It reports whether it answered.
func (g *Gateway) holdForApp(w http.ResponseWriter, r *http.Request, s *Session, st account.SessionState, target string) bool {
	if !verifyAdmits(*s) {
		g.stepUp(w, r, s, st, target)
		return true
	}
	u, err := url.Parse(target)
	if err != nil || g.cookieReaches(r, u.Hostname()) {
		return false
	}
	g.cfg.Logger.Error("totp_auth portal: the session cookie does not reach "+u.Hostname()+
		", so its verify requests never carry it: set cookie_domain to a domain above it and the portal's own name",
		zap.String("cookie_domain", g.cfg.CookieDomain))
	g.problem(w, r, problem{status: http.StatusBadRequest, code: codeCookieDomain, msg: "You are signed in as " + s.User +
		", but " + u.Hostname() + " cannot see this sign-in: the portal's cookie_domain does not cover it. Ask the operator to set cookie_domain."},
		page{Title: "This site cannot use this sign-in", Continue: g.pageURL(pathAccount)})
	return true
}

// cookieReaches reports whether the browser sends the session cookie to
// host: any host under cookie_domain, or without one only this host.
func (g *Gateway) cookieReaches(r *http.Request, host string) bool {
	cd := strings.ToLower(strings.TrimPrefix(g.cfg.CookieDomain, "."))
	if cd == "" {
		own := r.Host
		if h, _, err := net.SplitHostPort(own); err == nil {
			own = h
		}
		return strings.EqualFold(host, own)
	}
	return host == cd || strings.HasSuffix(host, "."+cd)
}

// continueURL is the page of this site that sends a browser on to target,
// an absolute URL, by GET (see seeOther).
func (g *Gateway) continueURL(target string) string {
	return g.pageURL(pathContinue) + "?redirect=" + url.QueryEscape(target)
}

// getContinue sends a signed-in browser on to an app behind the portal
// after a form post: a page that goes on at once (a refresh, no script
// needed) with a link for the browser that does not. The target is checked
// again here; a path goes on by redirect, and a visitor without a session
// goes to the login page with the target kept.
func (g *Gateway) getContinue(w http.ResponseWriter, r *http.Request) {
	target := g.safeRedirect(r, r.URL.Query().Get("redirect"))
	if strings.HasPrefix(target, "/") {
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	s, st, err := g.session(r, g.cfg.Clock.Now())
	switch {
	case err != nil:
		g.internalError(w, r, "check session", err)
		return
	case s == nil || !g.Admits(*s):
		http.Redirect(w, r, g.loginURL(r, target), http.StatusSeeOther)
		return
	case g.holdForApp(w, r, s, st, target):
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "redirect": target})
		return
	}
	site := target
	if u, err := url.Parse(target); err == nil {
		site = u.Host
	}
	g.render(w, r, http.StatusOK, "continue", page{Title: "You are signed in", User: s.User, Continue: target, Refresh: target, Site: site})
}
