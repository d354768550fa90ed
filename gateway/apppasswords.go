package gateway

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Requests with an app password (SPEC §15): a client that cannot answer a
// sign-in page sends `Authorization: Basic <user:app password>` to a block
// with app_passwords. Checking it is a keyed hash and a lookup in the
// user's SessionState, which every store keeps in memory: no bcrypt and no
// database round trip on the way through. Only a wrong one goes to the
// store, to count toward the lockout like any wrong password.

// appPasswordAlphabet is Crockford's base32 in lower case: no i, l, o or
// u, so nothing reads as something else when typed from a screen.
const appPasswordAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// appPasswordChars is the length of a value: 20 characters of 5 bits, 100
// bits of randomness, written in five groups of four.
const appPasswordChars = 20

// newAppPasswordValue returns a fresh value, grouped for typing
// (abcd-efgh-jkmn-pqrs-tvwx).
func newAppPasswordValue() (string, error) {
	var raw [appPasswordChars]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	var b strings.Builder
	for i, c := range raw {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(appPasswordAlphabet[c&31])
	}
	return b.String(), nil
}

// normalizeAppPassword is the form of a value that is hashed: dashes and
// spaces dropped, lower case, and the letters Crockford's base32 leaves
// out read as the digits they look like. Anything else passes unchanged,
// so that it still cannot match.
func normalizeAppPassword(v string) string {
	if len(v) > 64 {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		switch c {
		case '-', ' ':
			continue
		case 'o':
			c = '0'
		case 'i', 'l':
			c = '1'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// newAppPasswordID names a new app password in lists and commands: 48
// random bits in hex, which a shell passes as it is and a command line
// never takes for a flag (base64's "-" could begin one).
func newAppPasswordID() (string, error) {
	var raw [6]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(raw[:]), nil
}

// appPasswordHash is the keyed hash stored in place of a value. The user's
// name is part of it, so a value is only ever good for its own user.
func (g *Gateway) appPasswordHash(user, value string) []byte {
	m, _ := g.appHashes.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, g.appKey)
	}
	m.Reset()
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(normalizeAppPassword(value)))
	sum := m.Sum(make([]byte, 0, sha256.Size))
	g.appHashes.Put(m)
	return sum
}

// appPasswordKey derives the app-password key from the cookie hash key the
// store keeps (not a configured session_keys), so that every block sharing
// the store agrees on it and rotating session_keys leaves app passwords
// working.
func appPasswordKey(storedHashKey []byte) []byte {
	m := hmac.New(sha256.New, storedHashKey)
	m.Write([]byte("totp_auth app passwords v1"))
	return m.Sum(nil)
}

// takeBasic removes every Authorization header of the Basic scheme from r,
// on a block with app_passwords, so none reaches the upstream, and returns
// the credentials of the first one. Other schemes stay.
func takeBasic(r *http.Request) (user, value string, ok bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", "", false
	}
	kept := vals[:0:0]
	for _, v := range vals {
		if len(v) < 6 || !strings.EqualFold(v[:6], "basic ") {
			kept = append(kept, v)
			continue
		}
		if !ok {
			user, value, ok = parseBasic(v)
		}
	}
	if len(kept) == len(vals) {
		return "", "", false
	}
	if len(kept) == 0 {
		r.Header.Del("Authorization")
	} else {
		r.Header["Authorization"] = kept
	}
	return user, value, ok
}

// parseBasic reads "Basic base64(user:value)" as net/http does.
func parseBasic(h string) (user, value string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[6:]))
	if err != nil {
		return "", "", false
	}
	user, value, ok = strings.Cut(string(raw), ":")
	return user, value, ok
}

// basicChallenge asks a client for credentials: the realm is the issuer,
// written as an RFC 7235 quoted string.
func (g *Gateway) basicChallenge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", "Basic realm="+quotedString(g.issuer(r))+`, charset="UTF-8"`)
}

// quotedString writes s as an RFC 7230 quoted-string: '"' and '\' escaped,
// control characters (which it cannot hold) dropped.
func quotedString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 && c != '\t' || c == 0x7f:
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// passAppPassword decides a request without a session that carries Basic
// credentials. When it returns ok, r may go on as user's; otherwise it
// has answered.
func (g *Gateway) passAppPassword(w http.ResponseWriter, r *http.Request, name, value string, now time.Time) (string, bool) {
	w.Header()["Cache-Control"] = []string{"no-store"}
	user := CanonicalUser(name)
	if len(user) > 128 {
		user = user[:128]
	}
	if wait, key := g.locks.refusal(now, func() []account.Limit { return g.userLimits(r, user) }); wait > 0 {
		g.refuseLocked(w, r, user, key, wait)
		return "", false
	}
	st, err := g.cfg.Store.SessionState(user)
	if err != nil {
		g.internalError(w, r, "check app password", err)
		return "", false
	}
	grant, found := st.AppPassword(g.appPasswordHash(user, value))
	_, configured := g.cfg.Users[user]
	if !found || !(configured || st.PasswordSet) || grant.Credential != g.credential(user) ||
		!grant.Expires.IsZero() && !now.Before(grant.Expires) {
		g.wrongAppPassword(w, r, user, g.userLimits(r, user), now)
		return "", false
	}
	if !scopeAllows(grant, r) {
		g.auditLine(r, true, EventAppPassword, OutcomeOutOfScope, user, zap.String("app_password", grant.ID), methodField(r.Method))
		jsonError(w, http.StatusForbidden, codeOutOfScope)
		return "", false
	}
	if !g.allows(g.cfg.Allow, user) {
		g.auditLine(r, false, EventAppPassword, OutcomeForbidden, user)
		g.forbidden(w, r, user)
		return "", false
	}
	g.uses.note(g.cfg.Store, user, grant.ID, g.cfg.ClientIP(r), now)
	// Passing is the everyday case of a sync client: counted, not logged.
	g.auditLine(r, false, EventAppPassword, OutcomeOK, user)
	return user, true
}

// wrongAppPassword counts a wrong, revoked or expired app password (or a
// user's own password, which is never accepted here) as a failure of the
// user and the client, as a wrong password at the login is, and answers
// 401 with the challenge; a lock answers 429.
func (g *Gateway) wrongAppPassword(w http.ResponseWriter, r *http.Request, user string, limits []account.Limit, now time.Time) {
	a, lock, err := account.TakeAttempt(g.cfg.Store, now, g.cfg.Lockout, limits)
	if err != nil {
		g.internalError(w, r, "take attempt", err)
		return
	}
	if lock != nil {
		g.locks.note(lock.Key, now.Add(lock.RetryAfter))
		g.refuseLocked(w, r, user, lock.Key, lock.RetryAfter)
		return
	}
	locks, err := account.FailAttempt(g.cfg.Store, a, now, g.cfg.Lockout)
	if err != nil {
		g.cfg.Logger.Error("totp_auth: record failed attempt: " + err.Error())
	}
	g.audit(r, EventAppPassword, OutcomeFailure, user)
	for _, l := range locks {
		g.locks.note(l.Key, now.Add(l.RetryAfter))
		g.audit(r, EventLockout, OutcomeLocked, user, lockField(l.Key))
	}
	g.basicChallenge(w, r)
	jsonError(w, http.StatusUnauthorized, codeInvalidCredentials)
}

// refuseLocked answers a request with an app password of a locked user or
// from a locked client: 429 with Retry-After, as the login answers.
func (g *Gateway) refuseLocked(w http.ResponseWriter, r *http.Request, user, key string, wait time.Duration) {
	logged, suppressed := g.lockLines.allow(key, g.cfg.Clock.Now())
	g.auditLine(r, logged, EventAppPassword, OutcomeLocked, user, lockField(key), zap.Int("refusals_not_logged", suppressed))
	secs := max(1, int((wait+time.Second-1)/time.Second))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": codeLocked, "retry_after": secs})
}

// readOnlyMethods are the methods a read-only app password may use.
var readOnlyMethods = map[string]bool{"GET": true, "HEAD": true, "OPTIONS": true, "PROPFIND": true, "REPORT": true}

// methodOverrides are headers some frameworks take as the real method; a
// read-only app password may send none of them.
var methodOverrides = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// scopeAllows reports whether r lies within the app password's scope. The path
// is checked as the upstream will read it: a path that is not already
// clean (dot segments, doubled or encoded slashes, backslashes) never
// matches a prefix, so no spelling leads out of it.
func scopeAllows(p account.AppPasswordGrant, r *http.Request) bool {
	if p.ReadOnly {
		if !readOnlyMethods[r.Method] {
			return false
		}
		for _, h := range methodOverrides {
			if len(r.Header.Values(h)) > 0 {
				return false
			}
		}
		if r.URL.Query().Has("_method") {
			return false
		}
	}
	if p.PathPrefix == "" {
		return true
	}
	return pathWithin(r.URL.Path, r.URL.EscapedPath(), p.PathPrefix)
}

// pathWithin reports whether the decoded path p (escaped: as sent) is
// prefix or lies below it, counting whole segments only.
func pathWithin(p, escaped, prefix string) bool {
	lower := strings.ToLower(escaped)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(p, "\\") || strings.Contains(p, "\x00") {
		return false
	}
	// p must be its own clean form, but for the slash that ends a
	// directory's path.
	dir := p
	if len(p) > 1 && p[len(p)-1] == '/' {
		dir = p[:len(p)-1]
		if dir[len(dir)-1] == '/' {
			return false
		}
	}
	if path.Clean(dir) != dir {
		return false
	}
	return p == prefix || strings.HasPrefix(p, prefix) && len(p) > len(prefix) && p[len(prefix)] == '/'
}

// CleanPathPrefix checks a path_prefix for an app password and returns it
// in the form scope checks compare: absolute, clean, without a trailing
// slash. ok is false for anything else.
func CleanPathPrefix(p string) (string, bool) {
	if p == "" {
		return "", true
	}
	if !strings.HasPrefix(p, "/") || len(p) > 1024 || strings.ContainsAny(p, "?#%\\\x00") || strings.Contains(p, "//") {
		return "", false
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	clean := path.Clean(p)
	if clean != strings.TrimSuffix(p, "/") && clean != p {
		return "", false
	}
	if clean == "/" {
		return "", true
	}
	return clean, true
}
