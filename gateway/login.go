package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// The password step (SPEC §3 flow 2).

func (g *Gateway) getIndex(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, g.pageURL(pathAccount), http.StatusSeeOther)
}

func (g *Gateway) getLogin(w http.ResponseWriter, r *http.Request) {
	redirect := g.safeRedirect(r, r.URL.Query().Get("redirect"))
	if s, st, err := g.session(r, g.cfg.Clock.Now()); err == nil && s != nil && g.Admits(*s) && !wantsJSON(r) {
		if !strings.HasPrefix(redirect, "/") && g.holdForApp(w, r, s, st, redirect) {
			return
		}
		http.Redirect(w, r, redirect, http.StatusSeeOther)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "login_required", "redirect": redirect})
		return
	}
	g.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Redirect: redirect, PasskeyGet: g.loginPasskey(w, r)})
}

func (g *Gateway) postLogin(w http.ResponseWriter, r *http.Request) {
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	redirect := g.safeRedirect(r, f.get("redirect"))
	if cred := f.get("credential"); cred != "" {
		g.postPasskeyLogin(w, r, cred, redirect)
		return
	}
	user := CanonicalUser(f.get("username"))
	password := f.get("password")
	p := page{Title: "Sign in", Redirect: redirect, User: user}
	if user == "" || password == "" || len(user) > 128 || len(password) > 1024 {
		g.problem(w, r, problem{status: http.StatusBadRequest, code: codeBadRequest, msg: "Enter a user name and a password.", page: "login"}, p)
		return
	}
	// Until the password is right, an unknown name is logged and counted
	// only as a keyed hash: it may be a password typed into the wrong box.
	subject, err := g.subject(user)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if g.hashes.saturated(g.clientPrefix(r)) {
		g.refuseBusy(w, r, EventPassword, subject)
		return
	}
	a, ok := g.beginAttempt(w, r, EventPassword, subject, "login", p)
	if !ok {
		return
	}
	match, answered := g.passwordMatches(w, r, a, EventPassword, user, password)
	if answered {
		return
	}
	if !match {
		note := g.failAttempt(r, a, subject)
		g.audit(r, EventPassword, OutcomeFailure, subject)
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: codeInvalidCredentials, msg: "Wrong user name or password." + note, page: "login"}, p)
		return
	}
	// A right password gives its slot back but resets nothing: only a
	// completed sign-in does, or knowing the password would buy fresh
	// code guesses.
	g.releaseAttempt(a)
	acct, err := g.cfg.Store.Account(user)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	now := g.cfg.Clock.Now()
	next := func(stage pendingStage, status, page string) {
		id, err := newPendingID()
		if err != nil {
			g.internalError(w, r, "start pending sign-in", err)
			return
		}
		p := PendingLogin{User: user, ID: id, Stage: stage, Issued: now, Redirect: redirect, Generation: acct.Generation, Credential: g.credential(user)}
		if err := g.setPendingCookie(w, r, p); err != nil {
			g.internalError(w, r, "set pending cookie", err)
			return
		}
		g.audit(r, EventPassword, OutcomeOK, user)
		g.seeOther(w, r, g.pageURL(pagePath(page)), map[string]string{"status": status, "redirect": redirect})
	}
	switch {
	case acct.HasSecondFactor():
		remembered, err := g.useRememberedDevice(r, acct, now)
		if err != nil {
			g.internalError(w, r, "read remembered device", err)
			return
		}
		if !remembered {
			next(stageSecondFactor, "2fa_required", "2fa")
			return
		}
		// A browser remembered at an earlier second factor: the password
		// is proven now, the second factor was then (SPEC §16).
		if !g.completeSignIn(w, r, Session{User: user, Generation: acct.Generation}, now, FactorRememberedDevice) {
			return
		}
		g.seeOther(w, r, redirect, map[string]string{"status": "ok", "redirect": redirect})
	case !g.cfg.Optional2FA:
		next(stageEnroll, "enroll_required", "setup")
	default:
		if !g.completeSignIn(w, r, Session{User: user, Generation: acct.Generation}, now, FactorPassword) {
			return
		}
		g.seeOther(w, r, redirect, map[string]string{"status": "ok", "redirect": redirect})
	}
}

// completeSignIn starts the session s (see startSession), resets the
// user's failure counter and logs the sign-in. When it reports false it
// has answered 500 itself; otherwise callers answer the request.
func (g *Gateway) completeSignIn(w http.ResponseWriter, r *http.Request, s Session, now time.Time, factor Factor) bool {
	if err := account.ResetFailures(g.cfg.Store, account.UserCounter.Key(s.User)); err != nil {
		g.cfg.Logger.Error("totp_auth: reset failures: " + err.Error())
	}
	if err := g.startSession(w, r, s, factor, now); err != nil {
		g.internalError(w, r, "set session cookie", err)
		return false
	}
	g.auditSignIn(r, s.User, factor)
	return true
}

// subject is how the log and the failure counters name the user a sign-in
// attempt is for: the name itself when such a user exists here, otherwise
// a keyed hash of what was typed. A password typed into the user-name box
// is then neither logged nor stored, while repeats of one wrong name still
// share one counter and one log value that monitoring can match. The
// "Unknown-" prefix holds an upper-case letter, which no canonical user
// name does.
func (g *Gateway) subject(user string) (string, error) {
	if _, ok := g.cfg.Users[user]; ok {
		return user, nil
	}
	acct, err := g.cfg.Store.Account(user)
	if err != nil {
		return "", err
	}
	if acct.PasswordHash != nil {
		return user, nil
	}
	m := hmac.New(sha256.New, g.nameKey)
	m.Write([]byte(user))
	return "Unknown-" + hex.EncodeToString(m.Sum(nil)[:8]), nil
}
