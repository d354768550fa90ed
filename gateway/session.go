package gateway

import (
	"encoding/binary"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/securecookie"
)

// cookieKind keeps a pending cookie from ever being read as a session: the
// kind is inside the signed value, and securecookie also binds the value to
// the cookie's name.
type cookieKind byte

const (
	kindSession cookieKind = 1
	kindPending cookieKind = 2
)

// pendingStage says what a pending cookie is waiting for.
type pendingStage byte

const (
	stageSecondFactor pendingStage = 1
	stageEnroll       pendingStage = 2
)

// Session is a signed-in user, as carried in the session cookie.
type Session struct {
	User string
	// ID names this session, so that logout can end it on the server.
	ID         uint64
	Generation uint64
	// Issued bounds the absolute lifetime; LastSeen the idle time.
	Issued, LastSeen time.Time
}

// PendingLogin is a user whose password was right but whose second factor
// is still due. It is never a session.
type PendingLogin struct {
	User     string
	Stage    pendingStage
	Issued   time.Time
	Redirect string
}

const cookieVersion = 2

// cookieCodec signs (HMAC-SHA256) and encrypts (AES) cookie values. The
// value layout is a small fixed binary header and the user name, so decoding
// a session costs no reflection.
type cookieCodec struct {
	sc *securecookie.SecureCookie
}

func newCookieCodec(hashKey, blockKey []byte) *cookieCodec {
	sc := securecookie.New(hashKey, blockKey)
	sc.SetSerializer(securecookie.NopEncoder{})
	// Expiry is checked against the cookie's own timestamps with the
	// gateway's clock, not securecookie's wall clock.
	sc.MaxAge(0)
	sc.MaxLength(4096)
	return &cookieCodec{sc: sc}
}

var errBadCookie = errors.New("malformed cookie value")

// Layout: version, kind, stage, issued (8), lastSeen/unused (8),
// generation (8), session id (8), len(user) (1), user, redirect.
const cookieHeaderLen = 1 + 1 + 1 + 8 + 8 + 8 + 8 + 1

func (c *cookieCodec) encode(name string, kind cookieKind, stage pendingStage, issued, lastSeen time.Time, gen, id uint64, user, redirect string) (string, error) {
	if len(user) > 255 {
		return "", errors.New("user name too long for a cookie")
	}
	b := make([]byte, cookieHeaderLen, cookieHeaderLen+len(user)+len(redirect))
	b[0] = cookieVersion
	b[1] = byte(kind)
	b[2] = byte(stage)
	binary.BigEndian.PutUint64(b[3:], uint64(issued.Unix()))
	binary.BigEndian.PutUint64(b[11:], uint64(lastSeen.Unix()))
	binary.BigEndian.PutUint64(b[19:], gen)
	binary.BigEndian.PutUint64(b[27:], id)
	b[35] = byte(len(user))
	b = append(b, user...)
	b = append(b, redirect...)
	return c.sc.Encode(name, b)
}

type cookieValue struct {
	kind             cookieKind
	stage            pendingStage
	issued, lastSeen time.Time
	gen, id          uint64
	user, redirect   string
}

func (c *cookieCodec) decode(name, value string) (cookieValue, error) {
	var b []byte
	if err := c.sc.Decode(name, value, &b); err != nil {
		return cookieValue{}, err
	}
	if len(b) < cookieHeaderLen || b[0] != cookieVersion {
		return cookieValue{}, errBadCookie
	}
	n := int(b[35])
	if len(b) < cookieHeaderLen+n {
		return cookieValue{}, errBadCookie
	}
	return cookieValue{
		kind:     cookieKind(b[1]),
		stage:    pendingStage(b[2]),
		issued:   time.Unix(int64(binary.BigEndian.Uint64(b[3:])), 0),
		lastSeen: time.Unix(int64(binary.BigEndian.Uint64(b[11:])), 0),
		gen:      binary.BigEndian.Uint64(b[19:]),
		id:       binary.BigEndian.Uint64(b[27:]),
		user:     string(b[cookieHeaderLen : cookieHeaderLen+n]),
		redirect: string(b[cookieHeaderLen+n:]),
	}, nil
}

func (g *Gateway) pendingCookieName() string { return g.cfg.CookieName + "_pending" }
func (g *Gateway) csrfCookieName() string    { return g.cfg.CookieName + "_csrf" }

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
	if v.kind != kindSession || v.user == "" {
		return Session{}, false
	}
	// Verify answers cannot slide the cookie; the server remembers them.
	lastSeen := g.activity.lastSeen(v.id, v.lastSeen)
	if !now.Before(v.issued.Add(g.cfg.SessionTTL)) || !now.Before(lastSeen.Add(g.cfg.IdleTimeout)) || v.issued.After(now.Add(time.Minute)) {
		return Session{}, false
	}
	return Session{User: v.user, ID: v.id, Generation: v.gen, Issued: v.issued, LastSeen: lastSeen}, true
}

// readPending returns the request's pending login if authentic and younger
// than PendingTTL.
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
	return PendingLogin{User: v.user, Stage: v.stage, Issued: v.issued, Redirect: v.redirect}, true
}

func (g *Gateway) setSessionCookie(w http.ResponseWriter, r *http.Request, s Session) error {
	val, err := g.codec.encode(g.cfg.CookieName, kindSession, 0, s.Issued, s.LastSeen, s.Generation, s.ID, s.User, "")
	if err != nil {
		return err
	}
	http.SetCookie(w, g.cookie(r, g.cfg.CookieName, val, int(g.cfg.SessionTTL/time.Second)))
	return nil
}

func (g *Gateway) setPendingCookie(w http.ResponseWriter, r *http.Request, p PendingLogin) error {
	name := g.pendingCookieName()
	val, err := g.codec.encode(name, kindPending, p.Stage, p.Issued, p.Issued, 0, 0, p.User, p.Redirect)
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

// sessionCache remembers session cookie values that passed the MAC check,
// by their exact string, so a browser's every request does not pay for
// HMAC, AES and base64 again. Only authentic values get in, and only under
// their full text, so a forged value can never hit; expiry and generation
// are still checked on every request.
type sessionCache struct {
	mu sync.RWMutex
	m  map[string]cookieValue
}

// sessionCacheSize bounds the cache; when full it starts over, which costs
// one decode per active session.
const sessionCacheSize = 4096

func (c *sessionCache) get(value string) (cookieValue, bool) {
	c.mu.RLock()
	v, ok := c.m[value]
	c.mu.RUnlock()
	return v, ok
}

func (c *sessionCache) put(value string, v cookieValue) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= sessionCacheSize {
		c.m = make(map[string]cookieValue, 64)
	}
	c.m[value] = v
	c.mu.Unlock()
}
