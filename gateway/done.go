package gateway

import (
	"net/http"
)

// The pages a finished action ends on (SPEC §10): sign-out, sign-out
// everywhere and turning two-factor authentication off each say what
// happened, on a page a reload cannot post again.

// doneKind names what happened; it is the done page's query.
type doneKind string

const (
	doneSignedOut           doneKind = "signed-out"
	doneSignedOutEverywhere doneKind = "signed-out-everywhere"
	doneTwoFactorOff        doneKind = "two-factor-off"
	donePasswordChanged     doneKind = "password-changed"
)

func (g *Gateway) donePage(k doneKind) string { return g.pageURL(pathDone) + "?what=" + string(k) }

// factorsOffQuery is what the page of doneTwoFactorOff is told of the
// factors the user had, so that it names them: nothing for an
// authenticator app alone.
func factorsOffQuery(hadTOTP, hadPasskeys bool) string {
	switch {
	case hadPasskeys && hadTOTP:
		return "&factors=app,passkey"
	case hadPasskeys:
		return "&factors=passkey"
	}
	return ""
}

// factorsOff names what stopped working when two-factor authentication
// was turned off, from the page's factors query.
func factorsOff(q string) (removed, next string) {
	switch q {
	case "app,passkey":
		return "Your authenticator app, your passkeys and your backup codes", "a passkey or an app"
	case "passkey":
		return "Your passkeys and your backup codes", "a passkey or an app"
	}
	return "Your authenticator app and your backup codes", "an app"
}

func (g *Gateway) getDone(w http.ResponseWriter, r *http.Request) {
	k := doneKind(r.URL.Query().Get("what"))
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	s, _, err := g.session(r, g.cfg.Clock.Now())
	if err != nil {
		g.internalError(w, r, "check session", err)
		return
	}
	signedIn := s != nil
	removed, next := factorsOff(r.URL.Query().Get("factors"))
	p := page{Continue: g.loginURL(r, "/"), ContinueLabel: "Sign in again"}
	switch {
	case k == doneSignedOut:
		p.Title = "You are signed out"
		p.Notice = "This browser is signed out. Other devices you signed in on stay signed in; to end those too, sign in and choose “Sign out everywhere”."
	case k == doneSignedOutEverywhere:
		p.Title = "You are signed out everywhere"
		p.Notice = "Every session of yours has ended: in this browser and on every other device. Anyone who copied a session cookie of yours is out too."
	case k == doneTwoFactorOff && signedIn:
		p.Title = "Two-factor authentication is off"
		p.Notice = removed + " no longer work here. You sign in with your password alone until you turn it on again."
		p.Continue, p.ContinueLabel = g.pageURL(pathAccount), "Back to your account"
	case k == donePasswordChanged && signedIn:
		p.Title = "Your password is changed"
		p.Notice = "Use your new password from now on. You stay signed in here; every other browser and device you were signed in on is signed out."
		p.Continue, p.ContinueLabel = g.pageURL(pathAccount), "Back to your account"
	case k == doneTwoFactorOff:
		p.Title = "Two-factor authentication is off"
		p.Notice = removed + " no longer work here, and you were signed out everywhere. This site requires two-factor authentication: the next sign-in sets up " + next + " again."
	default:
		g.problem(w, r, problem{status: http.StatusNotFound, code: codeNotFound, msg: "There is no such page."}, page{Title: "Not found"})
		return
	}
	g.render(w, r, http.StatusOK, "message", p)
}
