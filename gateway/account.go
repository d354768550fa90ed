package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// The account page, whoami and disabling 2FA (SPEC §3 flow 6).

func (g *Gateway) getAccount(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	g.showAccountPage(w, r, s, st, http.StatusOK, g.backTarget(r, ""), accountErrors{})
}

// accountErrors are refusals the account page shows in the section of the
// form that was refused, which then stays open.
type accountErrors struct {
	disable, password string
	// other is a refusal shown at the top of the page.
	other string
}

// showAccount answers with the account overview, as JSON or as the account
// page showing errMsg at its top.
func (g *Gateway) showAccount(w http.ResponseWriter, r *http.Request, s *Session, st account.SessionState, status int, back, errMsg string) {
	g.showAccountPage(w, r, s, st, status, back, accountErrors{other: errMsg})
}

// showAccountPage answers with the account overview, as JSON or as the
// account page showing errs.
func (g *Gateway) showAccountPage(w http.ResponseWriter, r *http.Request, s *Session, st account.SessionState, status int, back string, errs accountErrors) {
	acct, err := g.cfg.Store.Account(s.User)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, status, map[string]any{"user": s.User, "two_factor": st.TOTPEnabled, "backup_codes_left": len(acct.BackupCodes)})
		return
	}
	p := g.accountPage(w, r, s, &acct)
	p.Error, p.DisableError, p.PasswordError = errs.other, errs.disable, errs.password
	p.Back, p.Redirect = back, back
	g.render(w, r, status, "account", p)
}

// accountPage is the account page of s for acct, without a message.
func (g *Gateway) accountPage(w http.ResponseWriter, r *http.Request, s *Session, acct *account.Account) page {
	_, inConfig := g.cfg.Users[s.User]
	p := page{Title: "Your account", User: s.User, TwoFactor: acct.HasSecondFactor(),
		CodesLeft: len(acct.BackupCodes), Back: "/", Redirect: "/",
		OwnPassword: acct.PasswordHash != nil && !inConfig, Required2FA: !g.cfg.Optional2FA}
	p.setFactors(acct)
	if _, ok := g.passkeySite(r); ok {
		p.PasskeysOn = true
		p.Passkeys = passkeyViews(acct.Passkeys)
		if acct.TOTPSecret == "" {
			p.PasskeyGet = g.accountPasskey(w, r, s, acct, ceremonyDisable)
		}
		p.CodesPasskeyGet = g.accountPasskey(w, r, s, acct, ceremonyBackupCodes)
		if p.OwnPassword && acct.TOTPSecret == "" {
			p.PasswordPasskeyGet = g.accountPasskey(w, r, s, acct, ceremonyPassword)
		}
	}
	p.Apps = g.appPasswordsView(*acct)
	sessions, devices := g.inForce(*acct, g.cfg.Clock.Now())
	p.Sessions, p.Devices = sessionRows(sessions, s.ID), deviceRows(devices)
	return p
}

// accountURL is the account page, leading back to back.
func (g *Gateway) accountURL(back string) string {
	if back == "" {
		return g.pageURL(pathAccount)
	}
	return g.pageURL(pathAccount) + "?redirect=" + url.QueryEscape(SafeRedirect(back))
}

// backTarget is where the account page leads back to: posted (the field
// of a form posted from it), else the page named by its redirect
// parameter, else the page of this site the visitor came from, else "/".
// The built-in pages are never a place to go back to.
func (g *Gateway) backTarget(r *http.Request, posted string) string {
	back := posted
	if back == "" {
		back = r.URL.Query().Get("redirect")
	}
	if back == "" {
		if ref, err := url.Parse(r.Referer()); err == nil && ref.Host == r.Host && ref.Host != "" {
			back = ref.RequestURI()
		}
	}
	back = SafeRedirect(back)
	if _, own := g.authPath(strings.SplitN(back, "?", 2)[0]); own {
		back = "/"
	}
	return back
}

func (g *Gateway) getWhoami(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": s.User, "two_factor": st.TOTPEnabled, "expires": g.sessionEnd(*s).UTC().Format(time.RFC3339)})
}

func (g *Gateway) postDisable(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	pg := page{Title: "Your account", User: s.User, TwoFactor: st.TOTPEnabled, Continue: g.pageURL(pathAccount)}
	if !st.TOTPEnabled {
		g.problem(w, r, problem{status: http.StatusBadRequest, code: codeNotEnrolled, msg: "Two-factor authentication is already off."}, pg)
		return
	}
	a, acct, ok := g.beginAccountAttempt(w, r, EventDisable, s.User, "", pg)
	if !ok {
		return
	}
	pwOK, answered := g.passwordMatches(w, r, a, EventDisable, s.User, f.get("password"))
	if answered {
		return
	}
	var codeOK bool
	var err error
	if cred := f.get("credential"); cred != "" && acct.TOTPSecret == "" {
		var refusal *passkeyRefusal
		refusal, err = g.checkAccountPasskey(w, r, s, ceremonyDisable, cred)
		codeOK = refusal == nil
	} else {
		_, codeOK, err = g.checkSecondFactor(r, acct, f.get("code"), nil)
	}
	if err != nil {
		g.releaseAttempt(a)
		g.internalError(w, r, "check code", err)
		return
	}
	if !pwOK || !codeOK {
		note := g.failAttempt(r, a, s.User)
		g.audit(r, EventDisable, OutcomeFailure, s.User)
		if wantsJSON(r) {
			jsonError(w, http.StatusUnauthorized, codeInvalidCredentials)
			return
		}
		// Which of the two was wrong stays unsaid: a borrowed session must
		// not learn the password by elimination.
		g.showAccountPage(w, r, s, st, http.StatusUnauthorized, g.backTarget(r, f.get("redirect")),
			accountErrors{disable: "Wrong password or code." + note + g.serverTime()})
		return
	}
	g.releaseAttempt(a)
	if err := account.DisableTOTP(g.cfg.Store, s.User); err != nil {
		g.internalError(w, r, "disable two-factor", err)
		return
	}
	g.audit(r, EventDisable, OutcomeOK, s.User)
	if !g.cfg.Optional2FA {
		// Two-factor is required here: every session ends, and the next
		// sign-in enrolls a new authenticator.
		if _, err := account.BumpGeneration(g.cfg.Store, s.User); err != nil {
			g.internalError(w, r, "end sessions", err)
			return
		}
		g.clearCookie(w, r, g.cfg.CookieName)
	}
	g.seeOther(w, r, g.donePage(doneTwoFactorOff)+factorsOffQuery(acct.TOTPSecret != "", len(acct.Passkeys) > 0), map[string]string{"status": "ok"})
}
