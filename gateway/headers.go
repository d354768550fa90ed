package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
)

// headerKey folds a header name the way permissive servers and frameworks
// do when they map headers to variables (CGI, PHP, WSGI): case-insensitive,
// with '_' read as '-'.
func headerKey(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// stripIdentity removes every spelling of the identity headers (the user
// header, GroupsHeader and FactorHeader) from the client's request, so the upstream sees
// only the values the gateway sets. It does not rely on the server
// dropping '_' headers: operators can allow them.
func (g *Gateway) stripIdentity(h http.Header) {
	for name := range h {
		if len(name) == len(g.userHeaderKey) && headerKey(name) == g.userHeaderKey ||
			len(name) == len(groupsHeaderKey) && headerKey(name) == groupsHeaderKey ||
			len(name) == len(factorHeaderKey) && headerKey(name) == factorHeaderKey {
			delete(h, name)
		}
	}
}

// stripIdentityTrailers removes the identity header from the request's
// trailers: those the client declared now, and those that arrive after
// the body, at the moment the body is read to its end (which is when
// net/http fills them in, and when a proxy copies them on).
func (g *Gateway) stripIdentityTrailers(r *http.Request) {
	g.stripIdentity(r.Trailer)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerGuard{ReadCloser: r.Body, r: r, g: g}
	}
}

// trailerGuard strips the identity header from r.Trailer once the body
// it wraps reaches its end, before the reader learns of the end.
type trailerGuard struct {
	io.ReadCloser
	r *http.Request
	g *Gateway
}

func (b *trailerGuard) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.g.stripIdentity(b.r.Trailer)
	}
	return n, err
}

// securityHeaders are sent with every built-in page and API answer.
func (g *Gateway) securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", g.csp)
}

// contentSecurityPolicy allows nothing but the embedded stylesheet and
// script (by hash), inline data: images (the QR code) and forms posting to
// this site.
func contentSecurityPolicy(css, js string) string {
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return "default-src 'none'; style-src " + hash(css) + "; script-src " + hash(js) + "; " +
		"img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}

// stripOwnCookies removes the gateway's cookies from the request before it
// goes upstream. The session cookie is a credential for every site that
// shares it (cookie_domain); the upstream has no use for it and should not
// be able to log or replay it. Other cookies pass unchanged.
func (g *Gateway) stripOwnCookies(h http.Header) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	kept := lines[:0:0]
	changed := false
	for _, line := range lines {
		if !strings.Contains(line, g.cfg.CookieName) {
			kept = append(kept, line)
			continue
		}
		changed = true
		var b strings.Builder
		for part := range strings.SplitSeq(line, ";") {
			// Spaces or tabs around the name are trimmed, as net/http
			// does when the gateway reads the cookie: `name =v` is ours.
			name, _, _ := strings.Cut(part, "=")
			if g.ownCookie(strings.Trim(name, " \t")) || strings.TrimSpace(part) == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(strings.TrimSpace(part))
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	switch {
	case !changed:
	case len(kept) == 0:
		delete(h, "Cookie")
	default:
		h["Cookie"] = kept
	}
}

func (g *Gateway) ownCookie(name string) bool {
	return name == g.cfg.CookieName || name == g.pendingCookieName() || name == g.csrfCookieName() ||
		name == g.deviceCookieName()
}
