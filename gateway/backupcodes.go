package gateway

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Backup codes in one place: making a set (the one way every flow makes
// one, in the hashing queue), checking and spending a code, regenerating
// the set after recovery or on request (SPEC §3 flow 5), and the page that
// shows a new set once (SPEC §10).

const (
	// backupAlphabet leaves out look-alikes: 0/O, 1/I/L.
	backupAlphabet  = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
	backupCodeLen   = 8
	backupCodeCount = 10
)

// newBackupCodes returns a fresh set of codes and their bcrypt hashes at cost.
func newBackupCodes(cost int) (codes []string, hashes [][]byte, err error) {
	for range backupCodeCount {
		b := make([]byte, backupCodeLen)
		for i := range b {
			n, err := randIndex(len(backupAlphabet))
			if err != nil {
				return nil, nil, err
			}
			b[i] = backupAlphabet[n]
		}
		h, err := bcrypt.GenerateFromPassword(b, cost)
		if err != nil {
			return nil, nil, fmt.Errorf("hash backup code: %w", err)
		}
		codes = append(codes, string(b[:4])+"-"+string(b[4:]))
		hashes = append(hashes, h)
	}
	return codes, hashes, nil
}

// randIndex returns a uniform random number in [0, n) for n < 256.
func randIndex(n int) (int, error) {
	limit := 256 - 256%n
	var b [1]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("read random: %w", err)
		}
		if int(b[0]) < limit {
			return int(b[0]) % n, nil
		}
	}
}

// normalizeBackupCode returns the code in stored form and whether the input
// is shaped like a backup code at all: only such input is compared against
// the hashes, so a mistyped TOTP code costs no bcrypt.
func normalizeBackupCode(in string) (string, bool) {
	s := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(in))
	if len(s) != backupCodeLen {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(backupAlphabet, s[i]) < 0 {
			return "", false
		}
	}
	return s, true
}

// matchBackupCode returns the stored hash the code matches.
func matchBackupCode(hashes [][]byte, code string) ([]byte, bool) {
	for _, h := range hashes {
		if bcrypt.CompareHashAndPassword(h, []byte(code)) == nil {
			return h, true
		}
	}
	return nil, false
}

// normalizeTOTPCode strips the spaces apps show in the middle of a code.
func normalizeTOTPCode(in string) (string, bool) {
	s := strings.ReplaceAll(strings.TrimSpace(in), " ", "")
	if len(s) != 6 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	return s, true
}

// newBackupCodeSet makes a set of backup codes in the hashing queue, under
// r's network's share: the one way every flow makes them. busy reports
// that the queue refused the work (the caller answers 503, see busy); err
// is a failure to make the codes.
func (g *Gateway) newBackupCodeSet(r *http.Request) (codes []string, hashes [][]byte, busy bool, err error) {
	if qerr := g.hash(r, func() { codes, hashes, err = newBackupCodes(g.cfg.BackupCodeCost) }); qerr != nil {
		return nil, nil, true, nil
	}
	return codes, hashes, false, err
}

// Backup codes after recovery and on request (SPEC §3 flow 5).

func (g *Gateway) getBackupCodes(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSessionInRecovery(w, r)
	if !ok {
		return
	}
	acct, err := g.cfg.Store.Account(s.User)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	spender := st.MustRegenerate && acct.RecoverySession == s.ID
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]any{"user": s.User, "regenerate_required": st.MustRegenerate, "code_required": !spender})
		return
	}
	p := g.backupPage(w, r, s, st, &acct)
	p.Redirect = g.safeRedirect(r, r.URL.Query().Get("redirect"))
	if st.MustRegenerate && !spender {
		with := "with a code from your app"
		switch {
		case p.PasskeyOnly():
			with = "with your passkey"
		case p.HasPasskeys:
			with = "with your passkey or a code from your app"
		}
		p.Notice = "A backup code was used to sign in to your account. Make a fresh set, " + with + ", before you go on: every old code stops working."
	}
	g.render(w, r, http.StatusOK, "backup", p)
}

// backupPage is the page that makes a new set of backup codes for s: the
// session that spent a backup code makes it at once; any other asks for
// a current code from the app or, where the user has one here, a passkey.
func (g *Gateway) backupPage(w http.ResponseWriter, r *http.Request, s *Session, st account.SessionState, acct *account.Account) page {
	p := page{Title: "Backup codes", User: s.User, Recovery: st.MustRegenerate && acct.RecoverySession == s.ID}
	p.setFactors(acct)
	if !p.Recovery {
		p.PasskeyGet = g.accountPasskey(w, r, s, acct, ceremonyBackupCodes)
	}
	return p
}

func (g *Gateway) postBackupCodes(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSessionInRecovery(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	pg := page{Title: "Backup codes", User: s.User, Recovery: st.MustRegenerate}
	if !st.TOTPEnabled {
		g.problem(w, r, problem{status: http.StatusBadRequest, code: codeNotEnrolled, msg: "Turn on two-factor authentication first.", page: "backup"}, pg)
		return
	}
	a, acct, ok := g.beginAccountAttempt(w, r, EventBackupCodesRegenerated, s.User, "backup", pg)
	if !ok {
		return
	}
	var factor []zap.Field
	if !st.MustRegenerate || acct.RecoverySession != s.ID {
		// Outside recovery a fresh set needs a fresh second factor, a
		// current code or a passkey's answer: a borrowed session alone
		// must not mint working codes. In recovery only the session that
		// spent the backup code is spared it (SPEC §4 rule 20).
		if cred := f.get("credential"); cred != "" {
			refusal, err := g.checkAccountPasskey(w, r, s, ceremonyBackupCodes, cred)
			if err != nil {
				g.releaseAttempt(a)
				g.internalError(w, r, "check passkey", err)
				return
			}
			if refusal != nil {
				note := g.failAttempt(r, a, s.User)
				pg = g.backupPage(w, r, s, st, &acct)
				pg.Redirect = g.safeRedirect(r, f.get("redirect"))
				refusal = &passkeyRefusal{refusal.reason, refusal.msg + note}
				g.refusePasskey(w, r, http.StatusUnauthorized, EventBackupCodesRegenerated, s.User, refusal, codeInvalidPasskey, "backup", pg)
				return
			}
			factor = append(factor, methodField(FactorPasskey.String()))
		} else {
			_, match, err := g.checkSecondFactor(r, acct, f.get("code"), nil)
			if err != nil {
				g.releaseAttempt(a)
				g.internalError(w, r, "check code", err)
				return
			}
			if !match {
				note := g.failAttempt(r, a, s.User)
				g.audit(r, EventBackupCodesRegenerated, OutcomeFailure, s.User)
				pg = g.backupPage(w, r, s, st, &acct)
				pg.Redirect = g.safeRedirect(r, f.get("redirect"))
				g.problem(w, r, problem{status: http.StatusUnauthorized, code: codeInvalidCode, msg: "That code is not right." + note + g.serverTime(), page: "backup"}, pg)
				return
			}
		}
	}
	codes, hashes, busy, err := g.newBackupCodeSet(r)
	if busy {
		g.busy(w, r, a, EventBackupCodesRegenerated, s.User)
		return
	}
	g.releaseAttempt(a)
	if err == nil {
		err = account.ReplaceBackupCodes(g.cfg.Store, s.User, hashes)
	}
	if err != nil {
		g.internalError(w, r, "replace backup codes", err)
		return
	}
	g.audit(r, EventBackupCodesRegenerated, OutcomeOK, s.User, factor...)
	next, reason := g.accountURL(f.get("redirect")), codesRegenerated
	if st.MustRegenerate {
		// Recovery interrupted a sign-in: go on to where it was headed.
		next, reason = g.safeRedirect(r, f.get("redirect")), codesRecovered
	}
	g.showCodesOnce(w, r, *s, reason, codes, next)
}

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
	http.Redirect(w, r, g.pageURL(pathCodes), http.StatusSeeOther)
}

// readShownCodes returns the codes the request's codes cookie may still show
// to session s at now, and the account they belong to.
func (g *Gateway) readShownCodes(r *http.Request, s *Session, now time.Time) (shownCodes, *account.Account, error) {
	ck, err := r.Cookie(g.codesCookieName())
	if err != nil {
		return shownCodes{}, nil, nil
	}
	c, err := g.decodeShownCodes(ck.Value)
	if err != nil || c.Session != s.ID || c.User != s.User || !now.Before(c.Made.Add(codesShownFor)) || c.Made.After(now.Add(time.Minute)) {
		return shownCodes{}, nil, nil
	}
	acct, err := g.cfg.Store.Account(s.User)
	if err != nil {
		return shownCodes{}, nil, err
	}
	if fp := setFingerprint(acct.BackupCodes); !bytes.Equal(fp[:], c.Set[:]) {
		return shownCodes{}, nil, nil
	}
	return c, &acct, nil
}

// getCodes shows a new set of backup codes to the session that made it.
func (g *Gateway) getCodes(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	now := g.cfg.Clock.Now()
	c, acct, err := g.readShownCodes(r, s, now)
	ok = acct != nil
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if wantsJSON(r) {
		if !ok {
			jsonError(w, http.StatusGone, codeCodesGone)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"backup_codes": c.Codes})
		return
	}
	if !ok {
		g.render(w, r, http.StatusOK, "message", page{Title: "Backup codes are shown once",
			Caution:  "New backup codes are shown once, right after they are made, and only in the browser that made them. If you did not save them, make a new set on your account page: it replaces every old code.",
			Continue: g.pageURL(pathAccount), ContinueLabel: "Go to your account"})
		return
	}
	titles := map[codesReason]string{
		codesEnrolled:    "Two-factor authentication is on",
		codesMoved:       "You moved to a new authenticator app",
		codesRegenerated: "New backup codes",
		codesRecovered:   "New backup codes",
	}
	p := page{Title: titles[c.Reason], User: s.User, Codes: c.Codes,
		Continue: c.Continue, Recovery: c.Reason == codesRecovered, Moved: c.Reason == codesMoved,
		Site: g.siteName(r), Date: c.Made.UTC().Format("2 January 2006")}
	p.setFactors(acct)
	g.render(w, r, http.StatusOK, "codes", p)
}

// getCodesText offers the same codes as a text file to save.
func (g *Gateway) getCodesText(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	c, acct, err := g.readShownCodes(r, s, g.cfg.Clock.Now())
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if acct == nil {
		g.problem(w, r, problem{status: http.StatusGone, code: codeCodesGone,
			msg: "Backup codes are shown once, right after they are made. Make a new set on your account page if you did not save them."},
			page{Title: "Backup codes are shown once", Continue: g.pageURL(pathAccount)})
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Backup codes for %s at %s\r\nMade %s\r\n\r\n", s.User, g.siteName(r), c.Made.UTC().Format("2 January 2006, 15:04 UTC"))
	var p page
	p.setFactors(acct)
	fmt.Fprintf(&b, "Each code signs you in once, in place of %s.\r\nMaking a new set voids all of these.\r\n\r\n", p.InPlaceOf("a code from your authenticator app"))
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
