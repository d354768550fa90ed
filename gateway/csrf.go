package gateway

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
)

// CSRF protection has two halves. HTML forms carry a token that is an HMAC
// of a random per-visitor cookie, so another site can neither read nor
// forge it. JSON bodies need Content-Type: application/json, which a
// cross-site form cannot send without a CORS preflight that is never
// granted; and where a browser sends Origin, its host must be this site.
// The scheme is not compared, so a TLS-terminating proxy in front works.

// csrfToken returns the visitor's form token, setting the visitor cookie
// first when there is none.
func (g *Gateway) csrfToken(w http.ResponseWriter, r *http.Request) string {
	name := g.csrfCookieName()
	ck, err := r.Cookie(name)
	if err != nil || len(ck.Value) != 43 {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		ck = &http.Cookie{Name: name, Value: base64.RawURLEncoding.EncodeToString(b), Path: g.cfg.Prefix,
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode}
		http.SetCookie(w, ck)
		r.AddCookie(ck)
	}
	return g.csrfFor(ck.Value)
}

func (g *Gateway) csrfFor(visitor string) string {
	m := hmac.New(sha256.New, g.csrfKey)
	m.Write([]byte(visitor))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether a state-changing request may proceed.
//
// Browsers send "Origin: null" with form posts from pages served with
// Referrer-Policy: no-referrer, as these are; for a form that says nothing,
// and the token decides. A JSON body with "Origin: null" is refused.
func (g *Gateway) checkCSRF(r *http.Request, f form) bool {
	origin := r.Header.Get("Origin")
	if f.JSON {
		return origin == "" || sameOrigin(r, origin)
	}
	if origin != "" && origin != "null" && !sameOrigin(r, origin) {
		return false
	}
	ck, err := r.Cookie(g.csrfCookieName())
	if err != nil || ck.Value == "" {
		return false
	}
	return hmac.Equal([]byte(f.get("csrf")), []byte(g.csrfFor(ck.Value)))
}

func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return u.Host == r.Host && u.User == nil && (u.Scheme == "http" || u.Scheme == "https")
}
