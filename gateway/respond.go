package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Answers shared by every flow: refusals, redirects after a post, and the
// guards that require a session or a pending sign-in.

// problem is a refusal as both kinds of client see it.
type problem struct {
	status int
	// code is the JSON error code API clients get.
	code string
	// msg is what a browser is shown.
	msg string
	// page names the page template that shows msg; "" means a plain
	// message page.
	page string
}

// problem answers a refused request: JSON {"error": code} for API clients,
// pr.page with pr.msg shown for browsers, filled in from p.
func (g *Gateway) problem(w http.ResponseWriter, r *http.Request, pr problem, p page) {
	if wantsJSON(r) {
		jsonError(w, pr.status, pr.code)
		return
	}
	name := pr.page
	if name == "" {
		name = "message"
		if p.Continue == "" {
			p.Continue = g.cfg.Prefix + "/login"
		}
	}
	if p.Title == "" {
		p.Title = "Something went wrong"
	}
	p.Error = pr.msg
	g.render(w, r, pr.status, name, p)
}

// readPost decodes the body of a state-changing request and checks its CSRF
// protection; on failure it has answered the request.
func (g *Gateway) readPost(w http.ResponseWriter, r *http.Request) (form, bool) {
	f, err := readForm(w, r)
	if err != nil {
		var re *requestError
		if !errors.As(err, &re) {
			re = &requestError{http.StatusBadRequest, "bad_request", "malformed request"}
		}
		g.problem(w, r, problem{status: re.status, code: re.code, msg: "The request could not be read: " + re.msg + "."}, page{Title: "Bad request"})
		return form{}, false
	}
	if !g.checkCSRF(r, f) {
		g.audit(r, EventCSRF, OutcomeRefused, "")
		g.problem(w, r, problem{status: http.StatusForbidden, code: "csrf", msg: "This form has expired or came from another site. Reload the page and try again."}, page{Title: "Form expired"})
		return form{}, false
	}
	return f, true
}

// seeOther ends a browser form post with a redirect; API clients get body.
func (g *Gateway) seeOther(w http.ResponseWriter, r *http.Request, to string, body any) {
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, body)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (g *Gateway) loginURL(redirect string) string {
	return g.cfg.Prefix + "/login?redirect=" + url.QueryEscape(SafeRedirect(redirect))
}

// requireSession returns the signed-in user's session, or answers 401
// (API) or a redirect to the login page (browser). A session below this
// block's level is sent on to its missing step (see stepUp), and a user
// who must regenerate backup codes is sent there instead.
func (g *Gateway) requireSession(w http.ResponseWriter, r *http.Request) (*Session, account.SessionState, bool) {
	return g.checkSession(w, r, false)
}

// requireSessionInRecovery is requireSession for the pages a user who must
// regenerate backup codes may still use (regenerating them, among others).
func (g *Gateway) requireSessionInRecovery(w http.ResponseWriter, r *http.Request) (*Session, account.SessionState, bool) {
	return g.checkSession(w, r, true)
}

func (g *Gateway) checkSession(w http.ResponseWriter, r *http.Request, allowRecovery bool) (*Session, account.SessionState, bool) {
	s, st, err := g.session(r, g.cfg.Clock.Now())
	switch {
	case err != nil:
		g.internalError(w, r, "check session", err)
		return nil, st, false
	case s == nil:
		if wantsJSON(r) || r.Method != http.MethodGet {
			g.problem(w, r, problem{status: http.StatusUnauthorized, code: "unauthenticated", msg: "You are not signed in."}, page{Title: "Signed out"})
		} else {
			http.Redirect(w, r, g.loginURL(r.URL.RequestURI()), http.StatusSeeOther)
		}
		return nil, st, false
	case !g.Admits(*s):
		target := g.cfg.Prefix + "/account"
		if r.Method == http.MethodGet {
			target = r.URL.RequestURI()
		}
		g.stepUp(w, r, s, st, target)
		return nil, st, false
	case st.MustRegenerate && !allowRecovery:
		g.requireRegeneration(w, r)
		return nil, st, false
	}
	return s, st, true
}

// requirePending returns the pending login at stage if it is still in
// force, or answers as requireSession does without one.
func (g *Gateway) requirePending(w http.ResponseWriter, r *http.Request, stage pendingStage) (PendingLogin, bool) {
	p, _, err := g.pending(r, g.cfg.Clock.Now())
	if err != nil {
		g.internalError(w, r, "check pending sign-in", err)
		return PendingLogin{}, false
	}
	if p != nil && p.Stage == stage {
		return *p, true
	}
	if wantsJSON(r) || r.Method != http.MethodGet {
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: "unauthenticated", msg: "Your sign-in has expired. Please sign in again."}, page{Title: "Sign in again"})
	} else {
		http.Redirect(w, r, g.loginURL("/"), http.StatusSeeOther)
	}
	return PendingLogin{}, false
}

// newSessionID returns a random session id.
func newSessionID() (uint64, error) {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(id[:]), nil
}

// startSession signs s.User in with a session proven by factor and ends
// any pending login. s carries the user, generation and (if already
// chosen) the id; the rest is filled in here.
func (g *Gateway) startSession(w http.ResponseWriter, r *http.Request, s Session, factor Factor, now time.Time) error {
	if s.ID == 0 {
		var err error
		if s.ID, err = newSessionID(); err != nil {
			return err
		}
	}
	s.Factor, s.Level = factor, LevelTwoFactor
	if factor == FactorPassword {
		s.Level = LevelPassword
	}
	s.Credential = g.credential(s.User)
	s.Issued, s.LastSeen, s.Expires = now, now, now.Add(g.cfg.SessionTTL)
	g.clearCookie(w, r, g.pendingCookieName())
	return g.setSessionCookie(w, r, s)
}
