package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// "Remember this device" (SPEC §16): at the second factor a user may have
// this browser remembered. Its device cookie then stands in for the second
// factor at the next sign-ins, never for the password: it is consulted
// only once the password was proven, for the user who proved it, and only
// on a block with remember_device. It is bound to the user, their
// generation and credential (what ends their sessions forgets the device
// too) and to a device record, which "Forget" removes.

// kindDevice is the device cookie's value (see cookieKind).
const kindDevice cookieKind = 3

func (g *Gateway) deviceCookieName() string { return g.cfg.CookieName + "_device" }

// rememberDays is the "Remember this device for N days" the second
// factor's page offers; 0 where the block does not offer it.
func (g *Gateway) rememberDays() int {
	if g.cfg.RememberDevice <= 0 {
		return 0
	}
	return max(1, int((g.cfg.RememberDevice+12*time.Hour)/(24*time.Hour)))
}

// rememberedDevice returns the remembered device that r's device cookie
// names for acct at now, if this block honours device cookies and the
// cookie is in force: authentic, for this very user, of their current
// generation and credential, not expired, and its device still remembered.
func (g *Gateway) rememberedDevice(r *http.Request, acct account.Account, now time.Time) (uint64, bool) {
	if g.cfg.RememberDevice <= 0 {
		return 0, false
	}
	name := g.deviceCookieName()
	ck, err := r.Cookie(name)
	if err != nil {
		return 0, false
	}
	v, err := g.codec.decode(name, ck.Value)
	if err != nil || v.kind != kindDevice || v.user != acct.Name || v.gen != acct.Generation ||
		v.credential != g.credential(acct.Name) || !now.Before(v.expires) {
		return 0, false
	}
	if d, ok := acct.DeviceAt(v.id, now); !ok || d.Credential != v.credential {
		return 0, false
	}
	return v.id, true
}

// useRememberedDevice reports whether r comes from a browser remembered
// for acct (see rememberedDevice), and records its use.
func (g *Gateway) useRememberedDevice(r *http.Request, acct account.Account, now time.Time) (bool, error) {
	id, ok := g.rememberedDevice(r, acct, now)
	if !ok {
		return false, nil
	}
	err := account.UseDevice(g.cfg.Store, acct.Name, acct.Generation, id, now)
	if errors.Is(err, account.ErrNotFound) {
		// Forgotten or ended since the account was read.
		return false, nil
	}
	return err == nil, err
}

// rememberDevice remembers the browser of r for the user of s, who has
// just proven the second factor, and sets its device cookie.
func (g *Gateway) rememberDevice(w http.ResponseWriter, r *http.Request, s Session, now time.Time) error {
	id, err := newSessionID()
	if err != nil {
		return err
	}
	d := account.RememberedDevice{ID: id, Device: deviceName(r.UserAgent()), Created: now, LastUsed: now, Expires: now.Add(g.cfg.RememberDevice),
		Credential: g.credential(s.User)}
	remembered, err := account.RememberDevice(g.cfg.Store, s.User, s.Generation, d, now)
	if err != nil || !remembered {
		return err
	}
	name := g.deviceCookieName()
	val, err := g.codec.encode(name, cookieValue{
		kind: kindDevice, issued: now, lastSeen: now, expires: d.Expires,
		gen: s.Generation, id: id, credential: g.credential(s.User), user: s.User,
	})
	if err != nil {
		return fmt.Errorf("encode device cookie: %w", err)
	}
	http.SetCookie(w, g.cookie(r, name, val, int(g.cfg.RememberDevice/time.Second)))
	return nil
}

// wantsRemember reports whether the second factor's form asked to
// remember this browser, where this block offers it.
func (g *Gateway) wantsRemember(f form) bool {
	if g.cfg.RememberDevice <= 0 {
		return false
	}
	v, err := strconv.ParseBool(f.get("remember"))
	return err == nil && v || f.get("remember") == "on"
}

func (g *Gateway) postForgetDevice(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	id, ok := ParseRegistryID(f.get("id"))
	err := account.ErrNotFound
	if ok {
		err = account.ForgetDevice(g.cfg.Store, s.User, id)
	}
	switch {
	case errors.Is(err, account.ErrNotFound):
		g.problem(w, r, problem{status: http.StatusNotFound, code: codeNotFound, msg: "This device is not remembered (any more)."}, page{Title: "Not found", Continue: g.pageURL(pathAccount)})
		return
	case err != nil:
		g.internalError(w, r, "forget device", err)
		return
	}
	g.audit(r, EventForgetDevice, OutcomeOK, s.User)
	g.seeOther(w, r, g.accountURL(g.backTarget(r, f.get("redirect"))), map[string]string{"status": "ok"})
}
