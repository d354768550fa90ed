package gateway

import (
	"net/http"
	"time"
)

// The account page, whoami and disabling 2FA (SPEC §3 flow 6).

func (g *Gateway) getAccount(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r, false)
	if !ok {
		return
	}
	g.showAccount(w, r, s, st, http.StatusOK, "")
}

// showAccount answers with the account overview, as JSON or as the account
// page showing errMsg.
func (g *Gateway) showAccount(w http.ResponseWriter, r *http.Request, s *Session, st SessionState, status int, errMsg string) {
	acct, err := g.cfg.Store.Account(s.User)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, status, map[string]any{"user": s.User, "two_factor": st.TOTPEnabled, "backup_codes_left": len(acct.BackupCodes)})
		return
	}
	g.render(w, r, status, "account", page{Title: "Your account", User: s.User, TwoFactor: st.TOTPEnabled, CodesLeft: len(acct.BackupCodes), Error: errMsg})
}

func (g *Gateway) getWhoami(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r, false)
	if !ok {
		return
	}
	expires := s.Issued.Add(g.cfg.SessionTTL)
	if idle := s.LastSeen.Add(g.cfg.IdleTimeout); idle.Before(expires) {
		expires = idle
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": s.User, "two_factor": st.TOTPEnabled, "expires": expires.UTC().Format(time.RFC3339)})
}

func (g *Gateway) postDisable(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r, false)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	pg := page{Title: "Your account", User: s.User, TwoFactor: st.TOTPEnabled, Continue: g.cfg.Prefix + "/account"}
	if !st.TOTPEnabled {
		g.problem(w, r, http.StatusBadRequest, "not_enrolled", "Two-factor authentication is already off.", "", pg)
		return
	}
	a, acct, ok := g.beginAccountAttempt(w, r, "disable", s.User, "", pg)
	if !ok {
		return
	}
	pwOK, answered := g.passwordMatches(w, r, a, "disable", s.User, f.get("password"))
	if answered {
		return
	}
	_, codeOK, err := g.checkSecondFactor(r, acct, f.get("code"), nil)
	if err != nil {
		g.releaseAttempt(a)
		g.internalError(w, r, "check code", err)
		return
	}
	if !pwOK || !codeOK {
		g.failAttempt(r, a, s.User)
		g.audit(r, "disable", "failure", s.User)
		if wantsJSON(r) {
			jsonError(w, http.StatusUnauthorized, "invalid_credentials")
			return
		}
		g.showAccount(w, r, s, st, http.StatusUnauthorized, "Wrong password or code: two-factor authentication is still on.")
		return
	}
	g.releaseAttempt(a)
	if err := DisableTOTP(g.cfg.Store, s.User); err != nil {
		g.internalError(w, r, "disable two-factor", err)
		return
	}
	g.audit(r, "disable", "ok", s.User)
	if !g.cfg.Optional2FA {
		// Two-factor is required here: every session ends, and the next
		// sign-in enrolls a new authenticator.
		if _, err := BumpGeneration(g.cfg.Store, s.User); err != nil {
			g.internalError(w, r, "end sessions", err)
			return
		}
		g.clearCookie(w, r, g.cfg.CookieName)
		g.seeOther(w, r, g.cfg.Prefix+"/login", map[string]string{"status": "ok"})
		return
	}
	g.seeOther(w, r, g.cfg.Prefix+"/account", map[string]string{"status": "ok"})
}
