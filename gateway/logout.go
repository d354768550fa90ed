package gateway

import (
	"net/http"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Sign-out of one session or of every session (SPEC §3 flow 7).

func (g *Gateway) postLogout(w http.ResponseWriter, r *http.Request) {
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	now := g.cfg.Clock.Now()
	user := ""
	if s, ok := g.readSessionToEnd(r, now); ok {
		user = s.User
		// End the session on the server too, so a copy of the cookie
		// taken before now is worthless: on every block that shares the
		// database, until the cookie's own expiry, which a block with a
		// longer session_ttl would otherwise still honour (SPEC §4 rule 22).
		if err := account.RevokeSession(g.cfg.Store, s.User, s.ID, s.Expires, now); err != nil {
			g.internalError(w, r, "end session", err)
			return
		}
	} else if p, ok := g.readPending(r, now); ok {
		user = p.User
	}
	g.clearCookie(w, r, g.cfg.CookieName)
	g.clearCookie(w, r, g.pendingCookieName())
	g.audit(r, EventLogout, OutcomeOK, user)
	next := g.donePage(doneSignedOut)
	if target := f.get("redirect"); target != "" {
		// "Sign in as someone else": the login page, going on to target.
		next = g.loginURL(r, target)
	}
	g.seeOther(w, r, next, map[string]string{"status": "ok"})
}

func (g *Gateway) postLogoutAll(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSessionInRecovery(w, r)
	if !ok {
		return
	}
	if _, ok := g.readPost(w, r); !ok {
		return
	}
	if _, err := account.BumpGeneration(g.cfg.Store, s.User); err != nil {
		g.internalError(w, r, "end sessions", err)
		return
	}
	g.clearCookie(w, r, g.cfg.CookieName)
	g.clearCookie(w, r, g.pendingCookieName())
	g.audit(r, EventLogoutAll, OutcomeOK, s.User)
	g.seeOther(w, r, g.donePage(doneSignedOutEverywhere), map[string]string{"status": "ok"})
}
