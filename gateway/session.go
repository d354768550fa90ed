package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway/account"
)

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

// LastSeenEvery is how stale the registry's last-seen time of a session
// may get: each instance writes it at most this often per session, off
// the request path (see lastSeenWriter).
const LastSeenEvery = 5 * time.Minute

// recordSession puts the session s, just started from r, in its user's
// registry (registry.go). Sign-in writes anyway, so this costs the
// signed-in requests nothing.
func (g *Gateway) recordSession(r *http.Request, s Session, now time.Time) error {
	rec := account.SessionRecord{ID: s.ID, Device: deviceName(r.UserAgent()), IP: g.cfg.ClientIP(r),
		SignedIn: s.Issued, LastSeen: now, Expires: s.Expires, Level: uint8(s.Level), Factor: factorName(s.Factor), Credential: s.Credential}
	if err := account.RecordSession(g.cfg.Store, s.User, s.Generation, rec, now); err != nil {
		return fmt.Errorf("record session of %q: %w", s.User, err)
	}
	g.lastSeen.written(s.ID, now)
	return nil
}

// lastSeenWriter writes the last-seen time of sessions to the registry in
// the background, at most once per LastSeenEvery per session and process:
// a signed-in request only looks at a map, and queues a write when one is
// due. The queue is bounded; a write that does not fit is dropped, and the
// next one is due LastSeenEvery later.
type lastSeenWriter struct {
	mu sync.RWMutex
	// at holds, per session id, the unix second its last write was queued.
	at      map[uint64]int64
	queue   chan seenAt
	running atomic.Bool
	// wg counts running writers, so that tests can wait for them (see
	// export_test.go).
	wg sync.WaitGroup
}

type seenAt struct {
	user string
	id   uint64
	at   time.Time
}

// lastSeenQueue bounds the writes waiting; maxLastSeen the sessions
// remembered (when full, the map starts over: at worst one extra write
// per session).
const (
	lastSeenQueue = 1024
	maxLastSeen   = 100_000
)

// written records that session id's last-seen time is current at now.
func (l *lastSeenWriter) written(id uint64, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at == nil || len(l.at) >= maxLastSeen {
		l.at = make(map[uint64]int64)
	}
	l.at[id] = now.Unix()
}

// seen notes that a request proved session s at now, and queues a write
// of it when the last one is LastSeenEvery old.
func (g *Gateway) seen(s *Session, now time.Time) {
	l := &g.lastSeen
	sec := now.Unix()
	l.mu.RLock()
	last, ok := l.at[s.ID]
	l.mu.RUnlock()
	if ok && sec-last < int64(LastSeenEvery/time.Second) {
		return
	}
	l.mu.Lock()
	if last, ok := l.at[s.ID]; ok && sec-last < int64(LastSeenEvery/time.Second) {
		l.mu.Unlock()
		return
	}
	if l.queue == nil {
		l.queue = make(chan seenAt, lastSeenQueue)
	}
	// Due or not written, the session waits LastSeenEvery again: a full
	// queue drops this write rather than making every request of the
	// session take the lock.
	if l.at == nil || len(l.at) >= maxLastSeen {
		l.at = make(map[uint64]int64)
	}
	l.at[s.ID] = sec
	select {
	case l.queue <- seenAt{user: s.User, id: s.ID, at: now}:
	default:
	}
	queue := l.queue
	l.mu.Unlock()
	if l.running.CompareAndSwap(false, true) {
		l.wg.Add(1)
		go g.writeLastSeen(queue)
	}
}

// writeLastSeen drains the queue and ends; seen starts it again when
// there is more.
func (g *Gateway) writeLastSeen(queue chan seenAt) {
	l := &g.lastSeen
	defer l.wg.Done()
	for {
		select {
		case w := <-queue:
			if err := account.SeeSession(g.cfg.Store, w.user, w.id, w.at); err != nil {
				g.cfg.Logger.Warn("totp_auth: record when a session was last seen", zap.String("user", w.user), zap.Error(err))
			}
			continue
		default:
		}
		l.running.Store(false)
		// A write queued after the select and before the flag fell
		// would otherwise wait for the next request.
		if len(queue) == 0 || !l.running.CompareAndSwap(false, true) {
			return
		}
	}
}
