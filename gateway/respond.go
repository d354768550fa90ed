package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// Answers shared by every flow: refusals, redirects after a post, and the
// guards that require a session or a pending sign-in.

// problem is a refusal as both kinds of client see it.
type problem struct {
	status int
	// code is the JSON error code API clients get.
	code errorCode
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
			p.Continue = g.pageURL(pathLogin)
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
			re = &requestError{http.StatusBadRequest, codeBadRequest, "malformed request"}
		}
		g.problem(w, r, problem{status: re.status, code: re.code, msg: "The request could not be read: " + re.msg + "."}, page{Title: "Bad request"})
		return form{}, false
	}
	if !g.checkCSRF(r, f) {
		g.audit(r, EventCSRF, OutcomeRefused, "")
		g.problem(w, r, problem{status: http.StatusForbidden, code: codeCSRF, msg: "This form has expired or came from another site. Reload the page and try again."}, page{Title: "Form expired"})
		return form{}, false
	}
	return f, true
}

// seeOther ends a browser form post with a redirect; API clients get body.
// A post never redirects to another site: the pages' CSP (form-action
// 'self') covers every redirect that follows a form post, so browsers
// would stop there. An absolute target (an app behind the portal) is
// reached through the continue page, which goes on by GET.
func (g *Gateway) seeOther(w http.ResponseWriter, r *http.Request, to string, body any) {
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, body)
		return
	}
	if !strings.HasPrefix(to, "/") {
		to = g.continueURL(to)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// loginURL is the login page, going on to target once the user is signed
// in: the one way every page and the gate build it. target is sanitised
// as every redirect is (safeRedirect): a path on this site or, in portal
// mode, an absolute URL the portal may send back to; anything else is "/".
func (g *Gateway) loginURL(r *http.Request, target string) string {
	return g.pageURL(pathLogin) + "?redirect=" + url.QueryEscape(g.safeRedirect(r, target))
}
