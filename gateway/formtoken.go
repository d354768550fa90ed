package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// One-time form tokens (SPEC §10): every rendered form carries a fresh
// token, and a post whose token was already posted is a form the browser
// sent again (a reload or the back button on a page that answered a post,
// or a double click). It is answered with a redirect to the form's page,
// unevaluated: it counts as no failure and shows no error.
//
// A token is remembered twice: in a cookie of the browser that posted it,
// which survives restarts and reaches every instance behind a load
// balancer, and in this process's memory, which also catches a second post
// sent before the answer to the first (and its cookie) arrived. Neither
// needs to be secret or signed: a forged "already posted" only gets its
// sender a redirect, and nothing is evaluated.

// formTokenField is the hidden field that carries the token.
const formTokenField = "form_token"

// formTokenTTL is how long a posted token is remembered: as long as a
// browser could plausibly resend the page that answered it.
const formTokenTTL = time.Hour

// formTokensPerCookie bounds how many posted tokens the cookie remembers.
const formTokensPerCookie = 8

// maxRememberedTokens bounds the tokens remembered in memory; when full,
// expired ones are dropped, then older ones until half is free. A token
// dropped early is still known by the cookie of the browser that sent it.
const maxRememberedTokens = 10000

// newFormToken returns a fresh token for one rendered page.
func newFormToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// postedTokens remembers the tokens posted to this process.
type postedTokens struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// claim records token as posted at now and reports whether it was new.
func (p *postedTokens) claim(token string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if at, ok := p.seen[token]; ok && now.Sub(at) < formTokenTTL {
		return false
	}
	if p.seen == nil {
		p.seen = make(map[string]time.Time)
	}
	if len(p.seen) >= maxRememberedTokens {
		p.prune(now)
	}
	p.seen[token] = now
	return true
}

// prune drops expired tokens, then (if that frees too little) tokens older
// than half the TTL and any others until half of the room is free.
func (p *postedTokens) prune(now time.Time) {
	for k, at := range p.seen {
		if now.Sub(at) >= formTokenTTL {
			delete(p.seen, k)
		}
	}
	if len(p.seen) < maxRememberedTokens/2 {
		return
	}
	cut := now.Add(-formTokenTTL / 2)
	for k, at := range p.seen {
		if at.Before(cut) || len(p.seen) >= maxRememberedTokens/2 {
			delete(p.seen, k)
		}
	}
}

func (g *Gateway) formTokensCookieName() string { return g.cfg.CookieName + "_forms" }

// answerResent answers a form post whose token was posted before with a
// redirect to the form's page, and reports whether it did. A new token is
// recorded as posted. Only form bodies carry tokens: JSON requests and
// forms without a token pass untouched. The body stays readable for the
// handler.
func (g *Gateway) answerResent(w http.ResponseWriter, r *http.Request, sub string) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" || r.Body == nil {
		return false
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(raw), r.Body), r.Body}
	if err != nil || len(raw) > maxBody {
		return false // the handler's own read answers it
	}
	vals, err := url.ParseQuery(string(raw))
	token := vals.Get(formTokenField)
	if err != nil || token == "" || len(token) > 64 || strings.ContainsAny(token, ". ;") {
		return false
	}
	var posted []string
	if ck, err := r.Cookie(g.formTokensCookieName()); err == nil && ck.Value != "" {
		posted = strings.Split(ck.Value, ".")
	}
	inCookie := false
	for _, t := range posted {
		inCookie = inCookie || t == token
	}
	if inCookie || !g.posted.claim(token, g.cfg.Clock.Now()) {
		g.audit(r, EventFormResent, OutcomeRefused, CanonicalUser(vals.Get("username")))
		http.Redirect(w, r, g.resentTarget(r, sub, vals), http.StatusSeeOther)
		return true
	}
	posted = append(posted, token)
	if len(posted) > formTokensPerCookie {
		posted = posted[len(posted)-formTokensPerCookie:]
	}
	http.SetCookie(w, &http.Cookie{Name: g.formTokensCookieName(), Value: strings.Join(posted, "."), Path: g.cfg.Prefix,
		MaxAge: int(formTokenTTL / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	return false
}

// resentTarget is the page whose form was posted to sub: where a resent
// post goes instead, to be filled in afresh.
func (g *Gateway) resentTarget(r *http.Request, sub string, vals url.Values) string {
	switch pagePath(sub) {
	case pathLogin:
		return g.loginURL(r, vals.Get("redirect"))
	case path2FA, pathSetup:
		return g.pageURL(pagePath(sub))
	case pathBackupCodes:
		if to := vals.Get("redirect"); to != "" {
			return g.pageURL(pathBackupCodes) + "?redirect=" + url.QueryEscape(SafeRedirect(to))
		}
		return g.pageURL(pathBackupCodes)
	case pathLogout:
		return g.donePage(doneSignedOut)
	case pathLogoutAll:
		return g.donePage(doneSignedOutEverywhere)
	}
	return g.pageURL(pathAccount)
}
