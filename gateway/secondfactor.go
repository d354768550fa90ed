package gateway

import (
	"errors"
	"net/http"
	"net/url"
)

// The second-factor step (SPEC §3 flow 4).

func (g *Gateway) getSecondFactor(w http.ResponseWriter, r *http.Request) {
	p, ok := g.requirePending(w, r, stageSecondFactor)
	if !ok {
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "2fa_required", "redirect": p.Redirect})
		return
	}
	pg := page{Title: "Two-factor authentication", User: p.User, RememberDays: g.rememberDays()}
	g.offerSecondFactor(w, r, &pg)
	g.render(w, r, http.StatusOK, "2fa", pg)
}

func (g *Gateway) postSecondFactor(w http.ResponseWriter, r *http.Request) {
	p, ok := g.requirePending(w, r, stageSecondFactor)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	if cred := f.get("credential"); cred != "" {
		g.postSecondFactorPasskey(w, r, p, cred)
		return
	}
	pg := page{Title: "Two-factor authentication", User: p.User, RememberDays: g.rememberDays()}
	a, acct, ok := g.beginAccountAttempt(w, r, EventSecondFactor, p.User, "2fa", pg)
	if !ok {
		return
	}
	// The session is named before the code is checked: a backup code
	// ends every other session, and this one must survive that.
	s := Session{User: p.User, Generation: acct.Generation}
	id, err := newSessionID()
	if err != nil {
		g.releaseAttempt(a)
		g.internalError(w, r, "make session id", err)
		return
	}
	s.ID = id
	usedBackup, ok, err := g.checkSecondFactor(r, acct, f.get("code"), &s)
	switch {
	case errors.Is(err, ErrBusy):
		g.busy(w, r, a, EventSecondFactor, p.User)
		return
	case err != nil:
		g.releaseAttempt(a)
		g.internalError(w, r, "check code", err)
		return
	case !ok:
		note := g.failAttempt(r, a, p.User)
		g.audit(r, EventSecondFactor, OutcomeFailure, p.User)
		g.offerSecondFactor(w, r, &pg)
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: codeInvalidCode, msg: "That code is not right." + note + g.serverTime(), page: "2fa"}, pg)
		return
	}
	g.releaseAttempt(a)
	factor := FactorTOTP
	if usedBackup {
		factor = FactorBackupCode
		g.audit(r, EventBackupCode, OutcomeOK, p.User)
	}
	now := g.cfg.Clock.Now()
	if !g.completeSignIn(w, r, s, now, factor) {
		return
	}
	if g.wantsRemember(f) {
		if err := g.rememberDevice(w, r, s, now); err != nil {
			// Signed in all the same: the device is simply not remembered.
			g.cfg.Logger.Error("totp_auth: remember device: " + err.Error())
		}
	}
	redirect := g.safeRedirect(r, p.Redirect)
	if usedBackup {
		g.seeOther(w, r, g.pageURL(pathBackupCodes)+"?redirect="+url.QueryEscape(redirect), map[string]string{"status": "regenerate_backup_codes", "redirect": redirect})
		return
	}
	g.seeOther(w, r, redirect, map[string]string{"status": "ok", "redirect": redirect})
}
