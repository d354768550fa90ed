package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

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

// original is the request a proxy asks about.
type original struct {
	method string
	// scheme and host (host[:port], canonical) of the original URL.
	scheme, host string
	// url is the original absolute URL, canonical.
	url string
}

func (g *Gateway) getVerify(w http.ResponseWriter, r *http.Request) {
	g.verify(w, r, forwardedHeaders)
}

func (g *Gateway) getVerifyNginx(w http.ResponseWriter, r *http.Request) {
	g.verify(w, r, originalHeaders)
}

func (g *Gateway) verify(w http.ResponseWriter, r *http.Request, flavor verifyFlavor) {
	w.Header().Set("Cache-Control", "no-store")
	if len(g.portal) == 0 {
		g.problem(w, r, http.StatusNotFound, "not_found", "There is no such page.", "", page{Title: "Not found"})
		return
	}
	if !g.cfg.TrustedProxy(r) {
		g.cfg.Logger.Warn("totp_auth verify: refused a caller outside the server's trusted_proxies",
			zap.String("remote_addr", r.RemoteAddr))
		jsonError(w, http.StatusForbidden, "untrusted_caller")
		return
	}
	o, err := g.readOriginal(r, flavor)
	if err != nil {
		g.badVerify(w, r, err)
		return
	}
	app, err := g.queryPolicy(r.URL.Query())
	if err != nil {
		g.badVerify(w, r, err)
		return
	}
	// The sign-in page is on this server, under the name the caller used
	// for it, with the scheme of the original request.
	self, ok := g.portalHost(r.Host)
	if !ok {
		g.badVerify(w, r, fmt.Errorf("the Host of the verify request, %q, is not the portal's own name under its portal domains: "+
			"make the proxy send the portal's name (Caddy: header_up Host {upstream_hostport}; nginx: proxy_set_header Host)", r.Host))
		return
	}
	portal := o.scheme + "://" + self
	now := g.cfg.Clock.Now()
	s, st, err := g.session(r, now)
	if err != nil {
		g.internalError(w, r, "check session", err)
		return
	}
	if s == nil || !verifyAdmits(*s) {
		g.verifySignIn(w, r, flavor, portal+g.cfg.Prefix+"/login?redirect="+url.QueryEscape(o.url))
		return
	}
	if st.MustRegenerate {
		g.verifySignIn(w, r, flavor, portal+g.cfg.Prefix+"/backup-codes?redirect="+url.QueryEscape(o.url))
		return
	}
	if !g.allows(g.cfg.Allow, s.User) || !g.allows(app, s.User) {
		g.audit(r, "access", "forbidden", s.User, zap.String("url", o.url))
		if wantsJSON(r) || !acceptsHTML(r) {
			jsonError(w, http.StatusForbidden, "forbidden")
			return
		}
		g.securityHeaders(w)
		g.renderPage(w, r, http.StatusForbidden, "forbidden", page{Title: "Not allowed", User: s.User,
			Continue: portal + g.cfg.Prefix + "/switch?redirect=" + url.QueryEscape(o.url)})
		return
	}
	g.activity.touch(s.ID, now, g.cfg.IdleTimeout)
	w.Header().Set(g.cfg.UserHeader, s.User)
	if groups := g.groupsValue(s.User); groups != "" {
		w.Header().Set(GroupsHeader, groups)
	}
	w.WriteHeader(http.StatusOK)
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
	jsonError(w, http.StatusUnauthorized, "unauthenticated")
}

// badVerify answers a verify request whose headers cannot be believed.
func (g *Gateway) badVerify(w http.ResponseWriter, r *http.Request, err error) {
	g.cfg.Logger.Warn("totp_auth verify: bad request", zap.Error(err), zap.String("client_ip", g.cfg.ClientIP(r)))
	jsonError(w, http.StatusBadRequest, "bad_request")
}

// readOriginal reads the original request from the flavor's headers, and
// refuses it when a header is missing, empty, repeated, unparsable, names
// a host outside the portal's domains, or disagrees with the other
// flavor's headers where those are sent too.
func (g *Gateway) readOriginal(r *http.Request, flavor verifyFlavor) (original, error) {
	var o original
	var err error
	if flavor == forwardedHeaders {
		o, err = g.fromForwarded(r.Header)
		if err == nil && present(r.Header, "X-Original-URL") {
			err = g.agrees(o, r.Header, originalHeaders)
		}
	} else {
		o, err = g.fromOriginal(r.Header)
		if err == nil && (present(r.Header, "X-Forwarded-Host") || present(r.Header, "X-Forwarded-Proto") || present(r.Header, "X-Forwarded-Uri")) {
			err = g.agrees(o, r.Header, forwardedHeaders)
		}
	}
	return o, err
}

// agrees checks that the other flavor's headers, when sent as well, name
// the same request.
func (g *Gateway) agrees(o original, h http.Header, other verifyFlavor) error {
	var p original
	var err error
	if other == forwardedHeaders {
		p, err = g.fromForwarded(h)
	} else {
		p, err = g.fromOriginal(h)
	}
	if err != nil {
		return fmt.Errorf("contradictory headers: %w", err)
	}
	if p.url != o.url || p.method != o.method {
		return errors.New("contradictory headers: X-Forwarded-* and X-Original-* name different requests")
	}
	return nil
}

func present(h http.Header, name string) bool { return len(h.Values(name)) > 0 }

// single returns the one value of header name, refusing none, an empty one
// and more than one.
func single(h http.Header, name string) (string, error) {
	vs := h.Values(name)
	switch {
	case len(vs) == 0:
		return "", fmt.Errorf("%s is missing", name)
	case len(vs) > 1:
		return "", fmt.Errorf("%s is sent %d times", name, len(vs))
	case strings.TrimSpace(vs[0]) == "":
		return "", fmt.Errorf("%s is empty", name)
	case hasControl(vs[0]):
		return "", fmt.Errorf("%s holds control characters", name)
	}
	return vs[0], nil
}

func (g *Gateway) fromForwarded(h http.Header) (original, error) {
	method, err := single(h, "X-Forwarded-Method")
	if err != nil {
		return original{}, err
	}
	proto, err := single(h, "X-Forwarded-Proto")
	if err != nil {
		return original{}, err
	}
	host, err := single(h, "X-Forwarded-Host")
	if err != nil {
		return original{}, err
	}
	uri, err := single(h, "X-Forwarded-Uri")
	if err != nil {
		return original{}, err
	}
	if proto != "http" && proto != "https" {
		return original{}, fmt.Errorf("X-Forwarded-Proto %q is neither http nor https", proto)
	}
	if _, ok := g.portalHost(host); !ok {
		return original{}, fmt.Errorf("X-Forwarded-Host %q is not a host[:port] under the portal's domains", host)
	}
	if !strings.HasPrefix(uri, "/") {
		return original{}, fmt.Errorf("X-Forwarded-Uri %q is not a path", uri)
	}
	return g.originalOf(method, proto+"://"+host+uri)
}

func (g *Gateway) fromOriginal(h http.Header) (original, error) {
	method, err := single(h, "X-Original-Method")
	if err != nil {
		return original{}, err
	}
	raw, err := single(h, "X-Original-URL")
	if err != nil {
		return original{}, err
	}
	return g.originalOf(method, raw)
}

// originalOf checks method and the absolute URL raw of an original request.
func (g *Gateway) originalOf(method, raw string) (original, error) {
	if !letters(method) {
		return original{}, fmt.Errorf("method %q is not a word of letters", method)
	}
	if strings.ContainsAny(raw, "\\ #") {
		return original{}, errors.New("the original URL holds a backslash, space or '#'")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return original{}, fmt.Errorf("the original URL does not parse: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Opaque != "" || u.User != nil {
		return original{}, errors.New("the original URL is not an absolute http(s) URL without userinfo")
	}
	if !strings.HasPrefix(raw, u.Scheme+"://"+u.Host+"/") {
		return original{}, errors.New("the original URL's authority is not plain host[:port] followed by a path")
	}
	host, ok := g.portalHost(u.Host)
	if !ok {
		return original{}, fmt.Errorf("the original host %q is not under the portal's domains", u.Host)
	}
	// Percent-escapes in the path and query must decode.
	if _, err := url.PathUnescape(u.EscapedPath()); err != nil {
		return original{}, fmt.Errorf("the original path does not decode: %w", err)
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return original{}, fmt.Errorf("the original query does not decode: %w", err)
	}
	abs, ok := PortalTarget(u.Scheme+"://"+host+raw[len(u.Scheme)+3+len(u.Host):], g.portal, true)
	if !ok {
		return original{}, errors.New("the original URL is not one the portal may send a browser back to")
	}
	return original{method: strings.ToUpper(method), scheme: u.Scheme, host: host, url: abs}, nil
}

// letters reports whether s is a word of 1 to 16 ASCII letters.
func letters(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// queryPolicy reads the per-app policy a caller may add to the verify URI:
// ?allow_users=a,b&allow_groups=g. A list given but empty, a parameter
// given twice or an unknown group is refused. Other parameters are the
// app's own: Caddy's forward_auth keeps the original query unless its uri
// sets one. A client can add these parameters to its own request only
// when the caller's verify URI has no query; they then only narrow who
// passes, since the block's policy applies as well.
func (g *Gateway) queryPolicy(q url.Values) (Policy, error) {
	var p Policy
	for name, vals := range q {
		if name != "allow_users" && name != "allow_groups" {
			continue
		}
		if len(vals) != 1 {
			return Policy{}, fmt.Errorf("verify parameter %s is given %d times", name, len(vals))
		}
		var list []string
		for _, v := range strings.Split(vals[0], ",") {
			if v = strings.TrimSpace(v); v == "" {
				return Policy{}, fmt.Errorf("verify parameter %s holds an empty name", name)
			}
			list = append(list, v)
		}
		switch name {
		case "allow_users":
			for i, u := range list {
				list[i] = CanonicalUser(u)
			}
			p.Users = list
		case "allow_groups":
			p.Groups = list
		}
	}
	if err := checkPolicy(p, g.cfg.Groups, "verify URI"); err != nil {
		return Policy{}, err
	}
	return p, nil
}
