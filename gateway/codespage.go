package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// New backup codes are shown on a page of their own, reached by a redirect
// after the post that made them (SPEC §10), so a reload shows the page
// again instead of posting the form again. The codes travel to that page
// in a cookie that securecookie signs and encrypts, bound to the session
// that made them, to the set still in force, and to a minute: a reload
// within that minute shows them again to the same session; another
// session, or anyone later, never sees them.

// codesShownFor is how long the page of a new set can be reloaded.
const codesShownFor = time.Minute

// codesReason says why a set of backup codes was made, which the page's
// title tells.
type codesReason byte

const (
	codesEnrolled    codesReason = 1 // first enrollment
	codesMoved       codesReason = 2 // moved to a new authenticator app
	codesRegenerated codesReason = 3 // a new set, on request
	codesRecovered   codesReason = 4 // a new set after a backup code was spent
)

// shownCodes is what the codes cookie carries.
type shownCodes struct {
	Session uint64
	Made    time.Time
	Reason  codesReason
	// Set identifies the set by its stored hashes, so the page never shows
	// codes that a later set (or a spent code) replaced.
	Set      [8]byte
	User     string
	Continue string
	Codes    []string
}

func (g *Gateway) codesCookieName() string { return g.cfg.CookieName + "_codes" }

// setFingerprint identifies a set of backup codes by its stored hashes.
func setFingerprint(hashes [][]byte) [8]byte {
	h := sha256.New()
	for _, c := range hashes {
		h.Write(c)
		h.Write([]byte{0})
	}
	var out [8]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Layout: session (8), made (8), reason (1), set (8), len(user) (1),
// len(continue) (2), user, continue, codes separated by ",".
const codesHeaderLen = 8 + 8 + 1 + 8 + 1 + 2

var errBadCodesCookie = errors.New("malformed codes cookie")

func (g *Gateway) encodeShownCodes(c shownCodes) (string, error) {
	if len(c.User) > 255 || len(c.Continue) > 2048 {
		return "", errors.New("user name or target too long for the codes cookie")
	}
	b := make([]byte, codesHeaderLen, 256)
	binary.BigEndian.PutUint64(b[0:], c.Session)
	binary.BigEndian.PutUint64(b[8:], uint64(c.Made.Unix()))
	b[16] = byte(c.Reason)
	copy(b[17:25], c.Set[:])
	b[25] = byte(len(c.User))
	binary.BigEndian.PutUint16(b[26:], uint16(len(c.Continue)))
	b = append(b, c.User...)
	b = append(b, c.Continue...)
	b = append(b, strings.Join(c.Codes, ",")...)
	return g.codec.sc.Encode(g.codesCookieName(), b)
}

func (g *Gateway) decodeShownCodes(value string) (shownCodes, error) {
	var b []byte
	if err := g.codec.sc.Decode(g.codesCookieName(), value, &b); err != nil {
		return shownCodes{}, err
	}
	if len(b) < codesHeaderLen {
		return shownCodes{}, errBadCodesCookie
	}
	nu, nc := int(b[25]), int(binary.BigEndian.Uint16(b[26:]))
	if len(b) < codesHeaderLen+nu+nc {
		return shownCodes{}, errBadCodesCookie
	}
	c := shownCodes{
		Session:  binary.BigEndian.Uint64(b[0:]),
		Made:     time.Unix(int64(binary.BigEndian.Uint64(b[8:])), 0),
		Reason:   codesReason(b[16]),
		User:     string(b[codesHeaderLen : codesHeaderLen+nu]),
		Continue: string(b[codesHeaderLen+nu : codesHeaderLen+nu+nc]),
		Codes:    strings.Split(string(b[codesHeaderLen+nu+nc:]), ","),
	}
	copy(c.Set[:], b[17:25])
	return c, nil
}

// showCodesOnce answers a post that made a new set of backup codes: API
// clients get the codes in the answer, browsers a redirect to the codes
// page, which the codes cookie lets show them for codesShownFor. next is
// where the page continues to, already made safe by the caller.
func (g *Gateway) showCodesOnce(w http.ResponseWriter, r *http.Request, s Session, reason codesReason, codes []string, next string) {
	if wantsJSON(r) {
		body := map[string]any{"backup_codes": codes}
		if reason == codesEnrolled || reason == codesMoved {
			body["status"] = "ok"
		}
		writeJSON(w, http.StatusOK, body)
		return
	}
	acct, err := g.cfg.Store.Account(s.User)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	val, err := g.encodeShownCodes(shownCodes{Session: s.ID, Made: g.cfg.Clock.Now(), Reason: reason,
		Set: setFingerprint(acct.BackupCodes), User: s.User, Continue: next, Codes: codes})
	if err != nil {
		g.internalError(w, r, "set codes cookie", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: g.codesCookieName(), Value: val, Path: g.cfg.Prefix,
		MaxAge: int(codesShownFor / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, g.cfg.Prefix+"/codes", http.StatusSeeOther)
}

// readShownCodes returns the codes the request's codes cookie may still show
// to session s at now.
func (g *Gateway) readShownCodes(r *http.Request, s *Session, now time.Time) (shownCodes, bool, error) {
	ck, err := r.Cookie(g.codesCookieName())
	if err != nil {
		return shownCodes{}, false, nil
	}
	c, err := g.decodeShownCodes(ck.Value)
	if err != nil || c.Session != s.ID || c.User != s.User || !now.Before(c.Made.Add(codesShownFor)) || c.Made.After(now.Add(time.Minute)) {
		return shownCodes{}, false, nil
	}
	acct, err := g.cfg.Store.Account(s.User)
	if err != nil {
		return shownCodes{}, false, err
	}
	if fp := setFingerprint(acct.BackupCodes); !bytes.Equal(fp[:], c.Set[:]) {
		return shownCodes{}, false, nil
	}
	return c, true, nil
}

// getCodes shows a new set of backup codes to the session that made it.
func (g *Gateway) getCodes(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	now := g.cfg.Clock.Now()
	c, ok, err := g.readShownCodes(r, s, now)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if wantsJSON(r) {
		if !ok {
			jsonError(w, http.StatusGone, "codes_gone")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"backup_codes": c.Codes})
		return
	}
	if !ok {
		g.render(w, r, http.StatusOK, "message", page{Title: "Backup codes are shown once",
			Caution:  "New backup codes are shown once, right after they are made, and only in the browser that made them. If you did not save them, make a new set on your account page: it replaces every old code.",
			Continue: g.cfg.Prefix + "/account", ContinueLabel: "Go to your account"})
		return
	}
	titles := map[codesReason]string{
		codesEnrolled:    "Two-factor authentication is on",
		codesMoved:       "You moved to a new authenticator app",
		codesRegenerated: "New backup codes",
		codesRecovered:   "New backup codes",
	}
	g.render(w, r, http.StatusOK, "codes", page{Title: titles[c.Reason], User: s.User, Codes: c.Codes,
		Continue: c.Continue, Recovery: c.Reason == codesRecovered, Moved: c.Reason == codesMoved,
		Site: g.siteName(r), Date: c.Made.UTC().Format("2 January 2006")})
}

// getCodesText offers the same codes as a text file to save.
func (g *Gateway) getCodesText(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	c, ok, err := g.readShownCodes(r, s, g.cfg.Clock.Now())
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if !ok {
		g.problem(w, r, problem{status: http.StatusGone, code: "codes_gone",
			msg: "Backup codes are shown once, right after they are made. Make a new set on your account page if you did not save them."},
			page{Title: "Backup codes are shown once", Continue: g.cfg.Prefix + "/account"})
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Backup codes for %s at %s\r\nMade %s\r\n\r\n", s.User, g.siteName(r), c.Made.UTC().Format("2 January 2006, 15:04 UTC"))
	b.WriteString("Each code signs you in once, in place of a code from your authenticator app.\r\nMaking a new set voids all of these.\r\n\r\n")
	for _, code := range c.Codes {
		fmt.Fprintf(&b, "[ ] %s\r\n", code)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="backup-codes.txt"`)
	_, _ = w.Write([]byte(b.String()))
}

// siteName names the site on a sheet of backup codes: the issuer, and the
// host when the issuer is not already it.
func (g *Gateway) siteName(r *http.Request) string {
	issuer := g.issuer(r)
	if host := strings.ToLower(r.Host); host != "" && !strings.EqualFold(issuer, host) {
		return issuer + " (" + host + ")"
	}
	return issuer
}
