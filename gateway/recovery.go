package gateway

import (
	"net/http"

	"github.com/totp-auth/totp_auth/gateway/account"
)

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
	p := page{Title: "Backup codes", User: s.User, Recovery: spender, Redirect: g.safeRedirect(r, r.URL.Query().Get("redirect"))}
	if st.MustRegenerate && !spender {
		p.Notice = "A backup code was used to sign in to your account. Make a fresh set, with a code from your app, before you go on: every old code stops working."
	}
	g.render(w, r, http.StatusOK, "backup", p)
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
		g.problem(w, r, problem{status: http.StatusBadRequest, code: "not_enrolled", msg: "Turn on two-factor authentication first.", page: "backup"}, pg)
		return
	}
	a, acct, ok := g.beginAccountAttempt(w, r, EventBackupCodesRegenerated, s.User, "backup", pg)
	if !ok {
		return
	}
	if !st.MustRegenerate || acct.RecoverySession != s.ID {
		// Outside recovery a fresh set needs a current code: a borrowed
		// session alone must not mint working codes. In recovery only the
		// session that spent the backup code is spared it (SPEC §4 rule 20).
		_, match, err := g.checkSecondFactor(r, acct, f.get("code"), nil)
		if err != nil {
			g.releaseAttempt(a)
			g.internalError(w, r, "check code", err)
			return
		}
		if !match {
			note := g.failAttempt(r, a, s.User)
			g.audit(r, EventBackupCodesRegenerated, OutcomeFailure, s.User)
			g.problem(w, r, problem{status: http.StatusUnauthorized, code: "invalid_code", msg: "That code is not right." + g.serverTime() + note, page: "backup"}, pg)
			return
		}
	}
	var codes []string
	var hashes [][]byte
	var err error
	if herr := g.hash(r, func() { codes, hashes, err = newBackupCodes(g.cfg.BackupCodeCost) }); herr != nil {
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
	g.audit(r, EventBackupCodesRegenerated, OutcomeOK, s.User)
	next, reason := g.accountURL(f.get("redirect")), codesRegenerated
	if st.MustRegenerate {
		// Recovery interrupted a sign-in: go on to where it was headed.
		next, reason = g.safeRedirect(r, f.get("redirect")), codesRecovered
	}
	g.showCodesOnce(w, r, *s, reason, codes, next)
}
