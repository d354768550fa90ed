package gateway

import (
	"net/http"
	"time"
)

// Sign-out of one session or of every session (SPEC §3 flow 7).

func (g *Gateway) postLogout(w http.ResponseWriter, r *http.Request) {
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	now := g.cfg.Clock.Now()
	user := ""
	if s, ok := g.sessionToEnd(r, now); ok {
		user = s.User
		// End the session on the server too, so a copy of the cookie
		// taken before now is worthless, until the cookie's own absolute
		// expiry: a block with a longer session_ttl accepts it until then.
		if err := RevokeSession(g.cfg.Store, s.User, s.ID, s.Expires, now); err != nil {
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
		next = g.loginAgainURL(r, target)
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
	if _, err := BumpGeneration(g.cfg.Store, s.User); err != nil {
		g.internalError(w, r, "end sessions", err)
		return
	}
	g.clearCookie(w, r, g.cfg.CookieName)
	g.clearCookie(w, r, g.pendingCookieName())
	g.audit(r, EventLogoutAll, OutcomeOK, s.User)
	g.seeOther(w, r, g.donePage(doneSignedOutEverywhere), map[string]string{"status": "ok"})
}

// sessionToEnd returns the session of the request's cookie if it is
// authentic and before its own absolute expiry, whether or not its idle or
// session time here has run out: another block sharing the database may
// accept it still (a longer timeout, or idle time kept by verify answers),
// so logout ends it there too.
func (g *Gateway) sessionToEnd(r *http.Request, now time.Time) (Session, bool) {
	ck, err := r.Cookie(g.cfg.CookieName)
	if err != nil {
		return Session{}, false
	}
	v, err := g.codec.decode(g.cfg.CookieName, ck.Value)
	if err != nil || v.kind != kindSession || v.user == "" || !now.Before(v.expires) {
		return Session{}, false
	}
	return Session{User: v.user, ID: v.id, Issued: v.issued, Expires: v.expires}, true
}
