package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// Answers shared by every flow: refusals, redirects after a post, and the
// guards that require a session or a pending sign-in.

// problem answers a refused request: JSON {"error": code} for API clients,
// the named page with msg shown for browsers (a plain message page when
// name is empty).
func (g *Gateway) problem(w http.ResponseWriter, r *http.Request, status int, code, msg, name string, p page) {
	if wantsJSON(r) {
		jsonError(w, status, code)
		return
	}
	if name == "" {
		name = "message"
		if p.Continue == "" {
			p.Continue = g.cfg.Prefix + "/login"
		}
	}
	if p.Title == "" {
		p.Title = "Something went wrong"
	}
	p.Error = msg
	g.render(w, r, status, name, p)
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
		g.problem(w, r, re.status, re.code, "The request could not be read: "+re.msg+".", "", page{Title: "Bad request"})
		return form{}, false
	}
	if !g.checkCSRF(r, f) {
		g.audit(r, "csrf", "refused", "")
		g.problem(w, r, http.StatusForbidden, "csrf", "This form has expired or came from another site. Reload the page and try again.", "", page{Title: "Form expired"})
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
// (API) or a redirect to the login page (browser). Unless allowRecovery,
// a user who must regenerate backup codes is sent there instead.
func (g *Gateway) requireSession(w http.ResponseWriter, r *http.Request, allowRecovery bool) (*Session, SessionState, bool) {
	s, st, err := g.session(r, g.cfg.Clock.Now())
	switch {
	case err != nil:
		g.internalError(w, r, "check session", err)
		return nil, st, false
	case s == nil:
		if wantsJSON(r) || r.Method != http.MethodGet {
			g.problem(w, r, http.StatusUnauthorized, "unauthenticated", "You are not signed in.", "", page{Title: "Signed out"})
		} else {
			http.Redirect(w, r, g.loginURL(r.URL.RequestURI()), http.StatusSeeOther)
		}
		return nil, st, false
	case st.MustRegenerate && !allowRecovery:
		g.requireRegeneration(w, r)
		return nil, st, false
	}
	return s, st, true
}

// requirePending returns the pending login at stage, or answers as
// requireSession does without one.
func (g *Gateway) requirePending(w http.ResponseWriter, r *http.Request, stage pendingStage) (PendingLogin, bool) {
	p, ok := g.readPending(r, g.cfg.Clock.Now())
	if ok && p.Stage == stage {
		return p, true
	}
	if wantsJSON(r) || r.Method != http.MethodGet {
		g.problem(w, r, http.StatusUnauthorized, "unauthenticated", "Your sign-in has expired. Please sign in again.", "", page{Title: "Sign in again"})
	} else {
		http.Redirect(w, r, g.loginURL("/"), http.StatusSeeOther)
	}
	return PendingLogin{}, false
}

// startSession signs user in, ends any pending login and returns the new
// session.
func (g *Gateway) startSession(w http.ResponseWriter, r *http.Request, user string, generation uint64, now time.Time) (Session, error) {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Session{}, err
	}
	g.clearCookie(w, r, g.pendingCookieName())
	s := Session{User: user, ID: binary.BigEndian.Uint64(id[:]), Generation: generation, Issued: now, LastSeen: now}
	return s, g.setSessionCookie(w, r, s)
}
