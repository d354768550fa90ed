package gateway

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net/http"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Sessions, in one place: what a session proves (its level and factor),
// its cookie and the pending sign-in's, read and written, the one rule
// for when a session ends (sessionEnd), the guards every page and the gate
// decide by (session, requireSession, stepUp, gateRefuse), and starting
// one. The list of a user's sessions and its last-seen writer are in
// sessionlist.go.

// Level is how much a session proves about its user (SPEC §4 rule 17).
// Levels are ordered: a block admits a session whose level is at least
// the one it requires.
type Level byte

const (
	// LevelPassword is a session proven by the password alone, possible
	// only on a block with require_2fa false.
	LevelPassword Level = 1
	// LevelTwoFactor is a session proven by the password and a second
	// factor; Factor says which.
	LevelTwoFactor Level = 2
)

// Factor names what raised a session to its level, for the log and for
// rules that depend on how a user signed in. New second factors (such as
// passkeys) are new Factors at LevelTwoFactor: the cookie has room for them.
type Factor byte

const (
	FactorPassword   Factor = 1
	FactorTOTP       Factor = 2
	FactorBackupCode Factor = 3
	// FactorEnrollment is a TOTP code confirming a new authenticator.
	FactorEnrollment Factor = 4
	// FactorPasskey is a passkey (WebAuthn) assertion or registration.
	FactorPasskey Factor = 5
)

func (f Factor) String() string {
	switch f {
	case FactorPassword:
		return "password"
	case FactorTOTP:
		return "totp"
	case FactorBackupCode:
		return "backup_code"
	case FactorEnrollment:
		return "enrollment"
	case FactorRememberedDevice:
		return "remembered_device"
	case FactorPasskey:
		return "passkey"
	}
	return "unknown"
}

// pendingStage says what a pending cookie is waiting for.
type pendingStage byte

const (
	stageSecondFactor pendingStage = 1
	stageEnroll       pendingStage = 2
	// stageEnrollPassword is a password-only session sent to enrollment
	// by a block that requires 2FA (step-up): the password is asked again
	// before any secret is shown, so a stolen password-only cookie cannot
	// enroll the thief's authenticator (SPEC §4 rule 21).
	stageEnrollPassword pendingStage = 3
)

// Session is a signed-in user, as carried in the session cookie.
type Session struct {
	User string
	// ID names this session, so that logout can end it on the server.
	ID         uint64
	Generation uint64
	Level      Level
	Factor     Factor
	// Credential fingerprints the configured password hash the session
	// was proven against (0 for users in the database): changing the
	// hash ends the session.
	Credential uint64
	// Issued bounds the absolute lifetime; LastSeen the idle time.
	Issued, LastSeen time.Time
	// Expires is the absolute end the issuing block gave the session; no
	// block accepts it later, whatever its own session_ttl.
	Expires time.Time
}

// PendingLogin is a user whose password was right but whose second factor
// is still due. It is never a session. It carries what a session does to
// be ended: the generation and the credential fingerprint.
type PendingLogin struct {
	User string
	// ID names this pending sign-in: a first enrollment's secret is bound
	// to it, so another sign-in of the same user never sees that secret
	// (SPEC §4 rule 21).
	ID         uint64
	Stage      pendingStage
	Issued     time.Time
	Redirect   string
	Generation uint64
	Credential uint64
}

// RequiredLevel is the level a session needs to pass this block.
func (g *Gateway) RequiredLevel() Level {
	if g.cfg.Optional2FA {
		return LevelPassword
	}
	return LevelTwoFactor
}

// Admits reports whether s may pass this block. A session below the
// block's level is a sign-in still pending here, never a pass: the gate,
// the built-in pages and forward-auth answers all decide through this.
func (g *Gateway) Admits(s Session) bool { return s.Level >= g.RequiredLevel() }

func (g *Gateway) pendingCookieName() string { return g.cfg.CookieName + "_pending" }
func (g *Gateway) csrfCookieName() string    { return g.cfg.CookieName + "_csrf" }

// credentials fingerprints every configured password hash, keyed so that
// the fingerprint says nothing about the hash.
func credentials(key []byte, users map[string][]byte) map[string]uint64 {
	out := make(map[string]uint64, len(users))
	for name, hash := range users {
		m := hmac.New(sha256.New, key)
		m.Write([]byte("totp_auth credential v1\x00"))
		m.Write(hash)
		out[name] = binary.BigEndian.Uint64(m.Sum(nil)) | 1 // never 0, the database users' value
	}
	return out
}

// credential is what a session of user must carry here: the fingerprint of
// the configured hash, or 0 for a user of the database.
func (g *Gateway) credential(user string) uint64 { return g.credentials[user] }

// readSession returns the request's session if its cookie is authentic and
// neither its absolute nor its idle lifetime has run out at now. The
// generation is checked by the caller against the store.
func (g *Gateway) readSession(r *http.Request, now time.Time) (Session, bool) {
	ck, err := r.Cookie(g.cfg.CookieName)
	if err != nil {
		return Session{}, false
	}
	v, ok := g.sessions.get(ck.Value)
	if !ok {
		var err error
		if v, err = g.codec.decode(g.cfg.CookieName, ck.Value); err != nil {
			return Session{}, false
		}
		if v.kind == kindSession {
			g.sessions.put(ck.Value, v)
		}
	}
	if v.kind != kindSession || v.user == "" || v.level < LevelPassword {
		return Session{}, false
	}
	// Verify answers cannot slide the cookie; the server remembers them.
	s := Session{User: v.user, ID: v.id, Generation: v.gen, Level: v.level, Factor: v.factor, Credential: v.credential,
		Issued: v.issued, LastSeen: g.activity.lastSeen(v.id, v.lastSeen), Expires: v.expires}
	if !now.Before(g.sessionEnd(s)) || s.Issued.After(now.Add(time.Minute)) {
		return Session{}, false
	}
	return s, true
}

// sessionEnd is when this block stops accepting s, unless it is used
// again: the earliest of its absolute lifetime here, the end its issuing
// block gave it (which no block extends) and its idle timeout. It is the
// one rule for when a session ends, for the check and for what whoami says.
func (g *Gateway) sessionEnd(s Session) time.Time {
	end := s.Issued.Add(g.cfg.SessionTTL)
	if s.Expires.Before(end) {
		end = s.Expires
	}
	if idle := s.LastSeen.Add(g.cfg.IdleTimeout); idle.Before(end) {
		end = idle
	}
	return end
}

// readSessionToEnd returns the request's session for logout: any authentic
// session cookie that its own expiry has not ended, even one this block's
// session_ttl or idle_timeout no longer accepts, since another block
// sharing the database may still accept it.
func (g *Gateway) readSessionToEnd(r *http.Request, now time.Time) (Session, bool) {
	ck, err := r.Cookie(g.cfg.CookieName)
	if err != nil {
		return Session{}, false
	}
	v, err := g.codec.decode(g.cfg.CookieName, ck.Value)
	if err != nil || v.kind != kindSession || v.user == "" || !now.Before(v.expires) {
		return Session{}, false
	}
	return Session{User: v.user, ID: v.id, Generation: v.gen, Level: v.level, Factor: v.factor, Credential: v.credential,
		Issued: v.issued, LastSeen: v.lastSeen, Expires: v.expires}, true
}

// readPending returns the request's pending login if authentic and younger
// than PendingTTL. The generation is checked by the caller.
func (g *Gateway) readPending(r *http.Request, now time.Time) (PendingLogin, bool) {
	name := g.pendingCookieName()
	ck, err := r.Cookie(name)
	if err != nil {
		return PendingLogin{}, false
	}
	v, err := g.codec.decode(name, ck.Value)
	if err != nil || v.kind != kindPending || v.user == "" {
		return PendingLogin{}, false
	}
	if !now.Before(v.issued.Add(PendingTTL)) || v.issued.After(now.Add(time.Minute)) {
		return PendingLogin{}, false
	}
	return PendingLogin{User: v.user, ID: v.id, Stage: v.stage, Issued: v.issued, Redirect: v.redirect, Generation: v.gen, Credential: v.credential}, true
}

// current reports whether a session or pending sign-in of user with this
// generation and credential is still in force: the user exists here (a
// `user` line with the same hash, or a password in the store) and nothing
// ended their sessions since.
func (g *Gateway) current(user string, generation, credential uint64, st account.SessionState) bool {
	if _, configured := g.cfg.Users[user]; !configured && !st.PasswordSet {
		return false
	}
	return st.Generation == generation && credential == g.credential(user)
}

// pending returns the request's pending sign-in if it is still in force,
// with the user's stored state.
func (g *Gateway) pending(r *http.Request, now time.Time) (*PendingLogin, account.SessionState, error) {
	p, ok := g.readPending(r, now)
	if !ok {
		return nil, account.SessionState{}, nil
	}
	st, err := g.cfg.Store.SessionState(p.User)
	if err != nil {
		return nil, account.SessionState{}, err
	}
	if !g.current(p.User, p.Generation, p.Credential, st) {
		return nil, account.SessionState{}, nil
	}
	return &p, st, nil
}

func (g *Gateway) setSessionCookie(w http.ResponseWriter, r *http.Request, s Session) error {
	val, err := g.codec.encode(g.cfg.CookieName, cookieValue{
		kind: kindSession, level: s.Level, factor: s.Factor, issued: s.Issued, lastSeen: s.LastSeen, expires: s.Expires,
		gen: s.Generation, id: s.ID, credential: s.Credential, user: s.User,
	})
	if err != nil {
		return err
	}
	http.SetCookie(w, g.cookie(r, g.cfg.CookieName, val, int(g.cfg.SessionTTL/time.Second)))
	return nil
}

func (g *Gateway) setPendingCookie(w http.ResponseWriter, r *http.Request, p PendingLogin) error {
	name := g.pendingCookieName()
	val, err := g.codec.encode(name, cookieValue{
		kind: kindPending, stage: p.Stage, issued: p.Issued, lastSeen: p.Issued, expires: p.Issued.Add(PendingTTL),
		gen: p.Generation, id: p.ID, credential: p.Credential, user: p.User, redirect: p.Redirect,
	})
	if err != nil {
		return err
	}
	http.SetCookie(w, g.cookie(r, name, val, int(PendingTTL/time.Second)))
	return nil
}

func (g *Gateway) clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, g.cookie(r, name, "", -1))
}

func (g *Gateway) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Domain:   g.cfg.CookieDomain,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	}
}

// slideAfter is how stale LastSeen may get before a request re-issues the
// cookie: sliding on every request would set a cookie on every response.
func (g *Gateway) slideAfter() time.Duration {
	return min(time.Minute, g.cfg.IdleTimeout/4)
}

// newPendingID names a new pending sign-in; never 0, which binds nothing.
func newPendingID() (uint64, error) {
	id, err := newSessionID()
	return id | 1<<63, err
}

// FactorRememberedDevice is a browser remembered at an earlier second
// factor (SPEC §16): the password was proven now, the second factor then.
const FactorRememberedDevice Factor = 6

// factorName is how the session registry, its API and the CLI name what
// proved a session (SPEC §16): confirming a new authenticator is a TOTP
// code like any other.
func factorName(f Factor) string {
	if f == FactorEnrollment {
		return FactorTOTP.String()
	}
	return f.String()
}

// session returns the request's valid session and its stored state, or a
// nil session when there is none: no cookie, a forged or expired one, one
// ended by logout or from before a logout-all, one proven against a
// password hash the configuration no longer holds, or one of a user who
// no longer exists. Whether the session is enough for this block is
// Admits' question.
func (g *Gateway) session(r *http.Request, now time.Time) (*Session, account.SessionState, error) {
	s, ok := g.readSession(r, now)
	if !ok {
		return nil, account.SessionState{}, nil
	}
	st, err := g.cfg.Store.SessionState(s.User)
	if err != nil {
		return nil, account.SessionState{}, err
	}
	if !g.current(s.User, s.Generation, s.Credential, st) || st.Revoked(s.ID) {
		return nil, account.SessionState{}, nil
	}
	return &s, st, nil
}

// stepUp answers a request whose session is below this block's level as a
// sign-in still pending: the password was proven, the second factor (or
// the enrollment) is still due. Browsers go to that step; API clients get
// 401 naming it, with the pending cookie to continue. A user without a
// second factor gives the password again before enrolling one: the
// session's cookie alone proves no more than that someone holds it.
func (g *Gateway) stepUp(w http.ResponseWriter, r *http.Request, s *Session, st account.SessionState, target string) {
	stage, step := stageSecondFactor, "2fa"
	if !st.TOTPEnabled {
		stage, step = stageEnrollPassword, "setup"
	}
	id, err := newPendingID()
	if err != nil {
		g.internalError(w, r, "start pending sign-in", err)
		return
	}
	p := PendingLogin{User: s.User, ID: id, Stage: stage, Issued: g.cfg.Clock.Now(), Redirect: g.safeRedirect(r, target),
		Generation: s.Generation, Credential: s.Credential}
	if err := g.setPendingCookie(w, r, p); err != nil {
		g.internalError(w, r, "set pending cookie", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if acceptsHTML(r) && !wantsJSON(r) {
		http.Redirect(w, r, g.pageURL(pagePath(step)), http.StatusSeeOther)
		return
	}
	code := map[string]errorCode{"2fa": codeTwoFactorRequired, "setup": codeEnrollRequired}[step]
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": code, "redirect": p.Redirect})
}

// gateRefuse answers a request without a session: browsers go to the login
// page with the original target; anything else gets 401.
func (g *Gateway) gateRefuse(w http.ResponseWriter, r *http.Request) {
	if acceptsHTML(r) {
		target := g.loginURL(r, r.URL.RequestURI())
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if g.cfg.AppPasswords {
		// Clients that cannot sign in on a page prompt for an app password.
		g.basicChallenge(w, r)
	}
	jsonError(w, http.StatusUnauthorized, codeUnauthenticated)
}

// requireSession returns the signed-in user's session, or answers 401
// (API) or a redirect to the login page (browser). A session below this
// block's level is sent on to its missing step (see stepUp), and a user
// who must regenerate backup codes is sent there instead.
func (g *Gateway) requireSession(w http.ResponseWriter, r *http.Request) (*Session, account.SessionState, bool) {
	return g.checkSession(w, r, false)
}

// requireSessionInRecovery is requireSession for the pages a user who must
// regenerate backup codes may still use (regenerating them, among others).
func (g *Gateway) requireSessionInRecovery(w http.ResponseWriter, r *http.Request) (*Session, account.SessionState, bool) {
	return g.checkSession(w, r, true)
}

func (g *Gateway) checkSession(w http.ResponseWriter, r *http.Request, allowRecovery bool) (*Session, account.SessionState, bool) {
	s, st, err := g.session(r, g.cfg.Clock.Now())
	switch {
	case err != nil:
		g.internalError(w, r, "check session", err)
		return nil, st, false
	case s == nil:
		if wantsJSON(r) || r.Method != http.MethodGet {
			g.problem(w, r, problem{status: http.StatusUnauthorized, code: codeUnauthenticated, msg: "You are not signed in."}, page{Title: "Signed out"})
		} else {
			http.Redirect(w, r, g.loginURL(r, r.URL.RequestURI()), http.StatusSeeOther)
		}
		return nil, st, false
	case !g.Admits(*s):
		target := g.pageURL(pathAccount)
		if r.Method == http.MethodGet {
			target = r.URL.RequestURI()
		}
		g.stepUp(w, r, s, st, target)
		return nil, st, false
	case st.MustRegenerate && !allowRecovery:
		g.requireRegeneration(w, r)
		return nil, st, false
	}
	return s, st, true
}

// requirePending returns the pending login at stage if it is still in
// force, or answers as requireSession does without one.
func (g *Gateway) requirePending(w http.ResponseWriter, r *http.Request, stage pendingStage) (PendingLogin, bool) {
	p, _, err := g.pending(r, g.cfg.Clock.Now())
	if err != nil {
		g.internalError(w, r, "check pending sign-in", err)
		return PendingLogin{}, false
	}
	if p != nil && p.Stage == stage {
		return *p, true
	}
	if wantsJSON(r) || r.Method != http.MethodGet {
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: codeUnauthenticated, msg: "Your sign-in has expired. Please sign in again."}, page{Title: "Sign in again"})
	} else {
		http.Redirect(w, r, g.loginURL(r, "/"), http.StatusSeeOther)
	}
	return PendingLogin{}, false
}

// newSessionID returns a random session id.
func newSessionID() (uint64, error) {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(id[:]), nil
}

// startSession signs s.User in with a session proven by factor and ends
// any pending login. s carries the user, generation and (if already
// chosen) the id; the rest is filled in here.
func (g *Gateway) startSession(w http.ResponseWriter, r *http.Request, s Session, factor Factor, now time.Time) error {
	if s.ID == 0 {
		var err error
		if s.ID, err = newSessionID(); err != nil {
			return err
		}
	}
	s.Factor, s.Level = factor, LevelTwoFactor
	if factor == FactorPassword {
		s.Level = LevelPassword
	}
	s.Credential = g.credential(s.User)
	s.Issued, s.LastSeen, s.Expires = now, now, now.Add(g.cfg.SessionTTL)
	if err := g.recordSession(r, s, now); err != nil {
		return err
	}
	g.clearCookie(w, r, g.pendingCookieName())
	return g.setSessionCookie(w, r, s)
}
