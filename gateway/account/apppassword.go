package account

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"time"
)

// App passwords in the account model (SPEC §15): what a store keeps of
// each one, the rules that change them, and the part every request with
// an app password checks, packed into SessionState so that the check is a
// memory lookup like a session's.

// MaxAppPasswords bounds the app passwords a user may hold at once.
const MaxAppPasswords = 50

// AppPasswordHashSize is the length of an app password's keyed hash.
const AppPasswordHashSize = 32

// ErrNoAppPassword means the user has no app password with the given id.
var ErrNoAppPassword = errors.New("no such app password")

// ErrTooManyAppPasswords means the user already holds MaxAppPasswords.
var ErrTooManyAppPasswords = errors.New("too many app passwords")

// AppPassword is one app password of a user. The value itself is never
// stored: only its keyed hash.
type AppPassword struct {
	// ID names the app password in lists, the API and the CLI; it is no
	// part of the value.
	ID string `json:"id"`
	// Name is what the user called it ("Phone – DAVx5").
	Name string `json:"name"`
	// Hash is the keyed hash of the value (AppPasswordHashSize bytes).
	Hash []byte `json:"hash"`
	// Created is when it was made.
	Created time.Time `json:"created"`
	// Expires is when it stops working; zero for never.
	Expires time.Time `json:"expires"`
	// ReadOnly limits it to GET, HEAD, OPTIONS, PROPFIND and REPORT.
	ReadOnly bool `json:"read_only,omitempty"`
	// PathPrefix, when set, limits it to that path and the paths below it.
	PathPrefix string `json:"path_prefix,omitempty"`
	// Credential fingerprints the configured password hash of the user it
	// was made under (0 for a user of the database), so that a changed
	// `user` line voids it as it ends the user's sessions.
	Credential uint64 `json:"credential,omitempty"`
	// LastUsed and LastUsedIP record its last use, at most once a minute.
	LastUsed   time.Time `json:"last_used"`
	LastUsedIP string    `json:"last_used_ip,omitempty"`
}

// AddAppPassword keeps p, forgetting app passwords that expired by now;
// ErrTooManyAppPasswords if the user holds MaxAppPasswords already.
func (a *Account) AddAppPassword(p AppPassword, now time.Time) error {
	kept := make([]AppPassword, 0, len(a.AppPasswords)+1)
	for _, q := range a.AppPasswords {
		if q.Expires.IsZero() || now.Before(q.Expires) {
			kept = append(kept, q)
		}
	}
	if len(kept) >= MaxAppPasswords {
		return ErrTooManyAppPasswords
	}
	p.Hash = bytes.Clone(p.Hash)
	a.AppPasswords = append(kept, p)
	return nil
}

// RevokeAppPassword removes the app password with this id
// (ErrNoAppPassword if there is none).
func (a *Account) RevokeAppPassword(id string) error {
	for i, p := range a.AppPasswords {
		if p.ID == id {
			a.AppPasswords = append(a.AppPasswords[:i:i], a.AppPasswords[i+1:]...)
			return nil
		}
	}
	return ErrNoAppPassword
}

// RevokeAppPasswords removes every app password of the user.
func (a *Account) RevokeAppPasswords() { a.AppPasswords = nil }

// NoteAppPasswordUse records a use of the app password with this id at
// from ip, unless a use as late is recorded already (ErrNoAppPassword if
// there is no such app password).
func (a *Account) NoteAppPasswordUse(id string, at time.Time, ip string) error {
	for i := range a.AppPasswords {
		p := &a.AppPasswords[i]
		if p.ID != id {
			continue
		}
		if !at.After(p.LastUsed) {
			return errUnchanged
		}
		p.LastUsed, p.LastUsedIP = at, ip
		return nil
	}
	return ErrNoAppPassword
}

// AddAppPassword applies Account.AddAppPassword to the user's account.
func AddAppPassword(s Store, user string, p AppPassword, now time.Time) error {
	return update(s, user, func(a *Account) error { return a.AddAppPassword(p, now) })
}

// RevokeAppPassword applies Account.RevokeAppPassword to the user's account.
func RevokeAppPassword(s Store, user, id string) error {
	return update(s, user, func(a *Account) error { return a.RevokeAppPassword(id) })
}

// RevokeAppPasswords applies Account.RevokeAppPasswords to the user's
// account, if it has any.
func RevokeAppPasswords(s Store, user string) error {
	return update(s, user, func(a *Account) error {
		if len(a.AppPasswords) == 0 {
			return errUnchanged
		}
		a.RevokeAppPasswords()
		return nil
	})
}

// NoteAppPasswordUse applies Account.NoteAppPasswordUse to the user's
// account; an app password revoked meanwhile, or a later use recorded
// already, leaves it unchanged.
func NoteAppPasswordUse(s Store, user, id string, at time.Time, ip string) error {
	return update(s, user, func(a *Account) error {
		if err := a.NoteAppPasswordUse(id, at, ip); err != nil {
			return errUnchanged
		}
		return nil
	})
}

// AppPasswordGrant is what SessionState holds of one app password: what a
// request with it is checked against. Its hash is not part of it.
type AppPasswordGrant struct {
	ID         string
	Expires    time.Time
	ReadOnly   bool
	PathPrefix string
	Credential uint64
}

// Layout of one app password in SessionState.AppPasswords: hash (32),
// expires in Unix seconds (8, 0 for never), credential (8), flags (1),
// len(id) (1), len(prefix) (2), id, prefix.
const grantHeaderLen = AppPasswordHashSize + 8 + 8 + 1 + 1 + 2

const grantReadOnly = 1 << 0

// appPasswordsString packs the app passwords into the form
// SessionState.AppPasswords holds.
func appPasswordsString(ps []AppPassword) string {
	if len(ps) == 0 {
		return ""
	}
	var b []byte
	for _, p := range ps {
		if len(p.Hash) != AppPasswordHashSize || len(p.ID) > 255 || len(p.PathPrefix) > 0xffff {
			continue // never made by the gateway; never accepted
		}
		var expires int64
		if !p.Expires.IsZero() {
			expires = p.Expires.Unix()
		}
		var flags byte
		if p.ReadOnly {
			flags |= grantReadOnly
		}
		b = append(b, p.Hash...)
		b = binary.BigEndian.AppendUint64(b, uint64(expires))
		b = binary.BigEndian.AppendUint64(b, p.Credential)
		b = append(b, flags, byte(len(p.ID)))
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.PathPrefix)))
		b = append(b, p.ID...)
		b = append(b, p.PathPrefix...)
	}
	return string(b)
}

// AppPassword returns the app password whose keyed hash is hash, comparing
// every stored hash in constant time.
func (s SessionState) AppPassword(hash []byte) (AppPasswordGrant, bool) {
	var found AppPasswordGrant
	match := 0
	v := s.AppPasswords
	for len(v) >= grantHeaderLen {
		nid, nprefix := int(v[AppPasswordHashSize+17]), int(binary.BigEndian.Uint16([]byte(v[AppPasswordHashSize+18:grantHeaderLen])))
		if len(v) < grantHeaderLen+nid+nprefix {
			break
		}
		if subtle.ConstantTimeCompare([]byte(v[:AppPasswordHashSize]), hash) == 1 && match == 0 {
			match = 1
			expires := int64(binary.BigEndian.Uint64([]byte(v[AppPasswordHashSize:])))
			found = AppPasswordGrant{
				ID:         v[grantHeaderLen : grantHeaderLen+nid],
				ReadOnly:   v[AppPasswordHashSize+16]&grantReadOnly != 0,
				PathPrefix: v[grantHeaderLen+nid : grantHeaderLen+nid+nprefix],
				Credential: binary.BigEndian.Uint64([]byte(v[AppPasswordHashSize+8:])),
			}
			if expires != 0 {
				found.Expires = time.Unix(expires, 0)
			}
		}
		v = v[grantHeaderLen+nid+nprefix:]
	}
	return found, match == 1
}

func cloneAppPasswords(ps []AppPassword) []AppPassword {
	if len(ps) == 0 {
		return nil
	}
	out := make([]AppPassword, len(ps))
	for i, p := range ps {
		p.Hash = bytes.Clone(p.Hash)
		out[i] = p
	}
	return out
}
