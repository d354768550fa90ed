package gateway

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/gorilla/securecookie"
)

// The signed and encrypted values of the session and pending cookies.

// cookieKind keeps a pending cookie from ever being read as a session: the
// kind is inside the signed value, and securecookie also binds the value to
// the cookie's name.
type cookieKind byte

const (
	kindSession cookieKind = 1
	kindPending cookieKind = 2
	// kindDevice, a remembered browser's cookie, is in devices.go.
)

// cookieVersion 3 added the level and factor, the absolute expiry, the
// credential fingerprint and the generation of pending sign-ins; 4 is a
// session the registry lists (SPEC §16), so "Sign out everywhere else"
// reaches every session in force. Older cookies do not decode: their
// holders sign in again.
const cookieVersion = 4

// cookieValue is what a cookie carries; which fields mean something
// depends on kind (see Session and PendingLogin).
type cookieValue struct {
	kind   cookieKind
	stage  pendingStage
	level  Level
	factor Factor
	// issued and lastSeen are the session's timestamps; expires is its
	// absolute end as the issuing block set it.
	issued, lastSeen, expires time.Time
	gen, id, credential       uint64
	user, redirect            string
}

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

// Layout: version, kind, stage, level, factor (1 each); issued, lastSeen,
// expires, generation, session id, credential (8 each); len(user) (1);
// user; redirect.
const cookieHeaderLen = 5 + 6*8 + 1

func (c *cookieCodec) encode(name string, v cookieValue) (string, error) {
	if len(v.user) > 255 {
		return "", errors.New("user name too long for a cookie")
	}
	b := make([]byte, 0, cookieHeaderLen+len(v.user)+len(v.redirect))
	b = append(b, cookieVersion, byte(v.kind), byte(v.stage), byte(v.level), byte(v.factor))
	for _, n := range []uint64{uint64(v.issued.Unix()), uint64(v.lastSeen.Unix()), uint64(v.expires.Unix()), v.gen, v.id, v.credential} {
		b = binary.BigEndian.AppendUint64(b, n)
	}
	b = append(b, byte(len(v.user)))
	b = append(b, v.user...)
	b = append(b, v.redirect...)
	return c.sc.Encode(name, b)
}

func (c *cookieCodec) decode(name, value string) (cookieValue, error) {
	var b []byte
	if err := c.sc.Decode(name, value, &b); err != nil {
		return cookieValue{}, err
	}
	if len(b) < cookieHeaderLen || b[0] != cookieVersion {
		return cookieValue{}, errBadCookie
	}
	n := int(b[cookieHeaderLen-1])
	if len(b) < cookieHeaderLen+n {
		return cookieValue{}, errBadCookie
	}
	u64 := func(i int) uint64 { return binary.BigEndian.Uint64(b[5+8*i:]) }
	unix := func(i int) time.Time { return time.Unix(int64(u64(i)), 0) }
	return cookieValue{
		kind:       cookieKind(b[1]),
		stage:      pendingStage(b[2]),
		level:      Level(b[3]),
		factor:     Factor(b[4]),
		issued:     unix(0),
		lastSeen:   unix(1),
		expires:    unix(2),
		gen:        u64(3),
		id:         u64(4),
		credential: u64(5),
		user:       string(b[cookieHeaderLen : cookieHeaderLen+n]),
		redirect:   string(b[cookieHeaderLen+n:]),
	}, nil
}

// sessionCache remembers session cookie values that passed the MAC check,
// by their exact string, so a browser's every request does not pay for
// HMAC, AES and base64 again. Only authentic values get in, and only under
// their full text, so a forged value can never hit; expiry and generation
// are still checked on every request.
type sessionCache = boundedCache[cookieValue]
