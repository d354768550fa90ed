package gateway

import (
	"errors"
	"net/http"

	"github.com/totp-auth/totp_auth/gateway/account"
	"golang.org/x/crypto/bcrypt"
)

// A user changes their own password on the account page (SPEC §3 `POST
// password`): the current password and, where the user has one, a current
// second factor prove it is them; the new password meets the rules every
// new password meets (CheckNewPassword); and, as `passwd` does, every
// other session and pending sign-in ends. This session goes on.

// EventPasswordChange is a user changing their own password.
const EventPasswordChange EventKind = "password_change"

// ownPasswordCost is the bcrypt cost of a password a user sets, where the
// current hash does not name one (argon2id): what `caddy hash-password`
// uses.
const ownPasswordCost = 14

func (g *Gateway) postPassword(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	back := g.backTarget(r, f.get("redirect"))
	refuse := func(status int, code errorCode, msg string, extra ...any) {
		if wantsJSON(r) {
			body := map[string]any{"error": code}
			for i := 0; i+1 < len(extra); i += 2 {
				body[extra[i].(string)] = extra[i+1]
			}
			writeJSON(w, status, body)
			return
		}
		g.showAccountPage(w, r, s, st, status, back, accountErrors{password: msg})
	}
	if _, inConfig := g.cfg.Users[s.User]; inConfig {
		refuse(http.StatusConflict, codeConfigUser, "Your password is set in this server's configuration: ask its administrator to change it.")
		return
	}
	current, next := f.get("current"), f.get("new")
	if len(current) > 1024 || len(next) > 1024 {
		refuse(http.StatusBadRequest, codeBadRequest, "That password is too long.")
		return
	}
	if err := CheckNewPassword(s.User, next); err != nil {
		var weak *WeakPassword
		errors.As(err, &weak)
		refuse(http.StatusBadRequest, codeWeakPassword, "Your password was not changed: "+weak.Reason+".", "reason", weak.Reason)
		return
	}
	pg := page{Title: "Your account", User: s.User, Continue: g.pageURL(pathAccount)}
	a, acct, ok := g.beginAccountAttempt(w, r, EventPasswordChange, s.User, "", pg)
	if !ok {
		return
	}
	if acct.PasswordHash == nil {
		// Neither a database user nor a `user` line: nothing to change.
		g.releaseAttempt(a)
		refuse(http.StatusConflict, codeConfigUser, "Your password is not kept here: ask the administrator to change it.")
		return
	}
	pwOK, answered := g.passwordMatches(w, r, a, EventPasswordChange, s.User, current)
	if answered {
		return
	}
	codeOK, cred := true, f.get("credential")
	if st.TOTPEnabled {
		// The second factor: a current code, or a passkey's answer.
		var err error
		if cred != "" {
			var refusal *passkeyRefusal
			refusal, err = g.checkAccountPasskey(w, r, s, ceremonyPassword, cred)
			codeOK = refusal == nil
		} else {
			_, codeOK, err = g.checkSecondFactor(r, acct, f.get("code"), nil)
		}
		if err != nil {
			g.releaseAttempt(a)
			g.internalError(w, r, "check second factor", err)
			return
		}
	}
	if !pwOK || !codeOK {
		note := g.failAttempt(r, a, s.User)
		g.audit(r, EventPasswordChange, OutcomeFailure, s.User)
		msg := "Wrong current password."
		switch {
		case st.TOTPEnabled && cred != "":
			// Which of the two was wrong stays unsaid, as when turning
			// 2FA off.
			msg = "Wrong current password, or your passkey was refused."
		case st.TOTPEnabled:
			msg = "Wrong current password or code."
		}
		refuse(http.StatusUnauthorized, codeInvalidCredentials, msg+note+g.serverTime())
		return
	}
	g.releaseAttempt(a)
	cost, err := bcrypt.Cost(acct.PasswordHash)
	if err != nil {
		cost = ownPasswordCost
	}
	var hash []byte
	if herr := g.hash(r, func() { hash, err = bcrypt.GenerateFromPassword([]byte(next), cost) }); herr != nil {
		g.refuseBusy(w, r, EventPasswordChange, s.User)
		return
	}
	if err != nil {
		g.internalError(w, r, "hash the new password", err)
		return
	}
	gen, err := account.ChangePassword(g.cfg.Store, s.User, hash)
	if err != nil {
		g.internalError(w, r, "change password", err)
		return
	}
	// Every session ended with the new generation (and left the registry,
	// with every remembered device); this one goes on.
	s.Generation = gen
	if err := g.recordSession(r, *s, g.cfg.Clock.Now()); err != nil {
		g.internalError(w, r, "record session", err)
		return
	}
	if err := g.setSessionCookie(w, r, *s); err != nil {
		g.internalError(w, r, "set session cookie", err)
		return
	}
	g.clearCookie(w, r, g.pendingCookieName())
	g.audit(r, EventPasswordChange, OutcomeOK, s.User)
	g.seeOther(w, r, g.donePage(donePasswordChanged), map[string]string{"status": "ok"})
}
