package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// headerKey folds a header name the way permissive servers and frameworks
// do when they map headers to variables (CGI, PHP, WSGI): case-insensitive,
// with '_' read as '-'.
func headerKey(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// stripIdentity removes every spelling of the identity header from the
// client's request, so the upstream sees only the value the gateway sets.
// It does not rely on the server dropping '_' headers: operators can allow them.
func (g *Gateway) stripIdentity(h http.Header) {
	for name := range h {
		if len(name) == len(g.userHeaderKey) && headerKey(name) == g.userHeaderKey {
			delete(h, name)
		}
	}
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

// contentSecurityPolicy allows nothing but the embedded stylesheet (by
// hash), inline data: images (the QR code) and forms posting to this site.
func contentSecurityPolicy(css string) string {
	sum := sha256.Sum256([]byte(css))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}
