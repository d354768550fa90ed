package gateway

import (
	"errors"
	"net/http"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// The passkeys on the account page and in the JSON API (SPEC §14):
// listing, renaming and removing them, and a passkey as the fresh second
// factor an account action asks for (turning two-factor authentication
// off, a new set of backup codes).

// passkeyView is a passkey as the JSON API and the account page show it.
type passkeyView struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Created  string `json:"created"`
	LastUsed string `json:"last_used,omitempty"`
	// CreatedText and LastUsedText are the times as the page says them.
	CreatedText, LastUsedText string `json:"-"`
}

func passkeyViews(ps []account.Passkey) []passkeyView {
	out := make([]passkeyView, 0, len(ps))
	for _, p := range ps {
		v := passkeyView{ID: encodeID(p.ID), Name: p.Name, Created: p.Created.UTC().Format(time.RFC3339), CreatedText: pageTime(p.Created)}
		if !p.LastUsed.IsZero() {
			v.LastUsed, v.LastUsedText = p.LastUsed.UTC().Format(time.RFC3339), pageTime(p.LastUsed)
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created < out[j].Created })
	return out
}

// getPasskeys lists the signed-in user's passkeys.
func (g *Gateway) getPasskeys(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	if !wantsJSON(r) {
		http.Redirect(w, r, g.pageURL(pathAccount), http.StatusSeeOther)
		return
	}
	acct, err := g.cfg.Store.Account(s.User)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"passkeys": passkeyViews(acct.Passkeys)})
}

// postPasskeyRemove removes one of the signed-in user's passkeys after the
// password; the last second factor stays where require_2fa is on.
func (g *Gateway) postPasskeyRemove(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	acct, err := g.cfg.Store.Account(s.User)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	pg := g.accountPage(w, r, s, &acct)
	id, ok := decodeID(f.get("id"))
	if _, has := acct.Passkey(id); !ok || !has {
		g.problem(w, r, problem{status: http.StatusNotFound, code: codeNotFound, msg: "There is no such passkey.", page: "account"}, pg)
		return
	}
	a, ok := g.beginAttempt(w, r, EventPasskeyRemoved, s.User, "account", pg)
	if !ok {
		return
	}
	match, answered := g.passwordMatches(w, r, a, EventPasskeyRemoved, s.User, f.get("password"))
	if answered {
		return
	}
	if !match {
		note := g.failAttempt(r, a, s.User)
		g.audit(r, EventPasskeyRemoved, OutcomeFailure, s.User)
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: codeInvalidCredentials, msg: "Wrong password: the passkey is still there." + note, page: "account"}, pg)
		return
	}
	g.releaseAttempt(a)
	err = g.cfg.Store.UpdateAccount(s.User, func(a *account.Account) error { return a.RemovePasskey(id, !g.cfg.Optional2FA) })
	switch {
	case errors.Is(err, account.ErrLastFactor):
		g.audit(r, EventPasskeyRemoved, OutcomeRefused, s.User, zap.String("reason", "last_factor"))
		g.problem(w, r, problem{status: http.StatusConflict, code: codeLastFactor,
			msg: "This is your last second factor, and this site requires one. Add another passkey or an authenticator app first, or turn two-factor authentication off.", page: "account"}, pg)
		return
	case errors.Is(err, account.ErrNoPasskey):
		g.problem(w, r, problem{status: http.StatusNotFound, code: codeNotFound, msg: "There is no such passkey.", page: "account"}, pg)
		return
	case err != nil:
		g.internalError(w, r, "remove passkey", err)
		return
	}
	g.audit(r, EventPasskeyRemoved, OutcomeOK, s.User, zap.String("passkey", encodeID(id)))
	g.seeOther(w, r, g.pageURL(pathAccount)+"?removed=passkey", map[string]string{"status": "ok"})
}

// postPasskeyRename renames one of the signed-in user's passkeys.
func (g *Gateway) postPasskeyRename(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	id, ok := decodeID(f.get("id"))
	err := g.cfg.Store.UpdateAccount(s.User, func(a *account.Account) error {
		if !ok {
			return account.ErrNoPasskey
		}
		return a.RenamePasskey(id, f.get("name"))
	})
	if errors.Is(err, account.ErrNoPasskey) {
		acct, _ := g.cfg.Store.Account(s.User)
		g.problem(w, r, problem{status: http.StatusNotFound, code: codeNotFound, msg: "There is no such passkey.", page: "account"}, g.accountPage(w, r, s, &acct))
		return
	}
	if err != nil {
		g.internalError(w, r, "rename passkey", err)
		return
	}
	g.seeOther(w, r, g.pageURL(pathAccount), map[string]string{"status": "ok"})
}

// refusedInsecure is a passkey answer sent where passkeys cannot be used:
// plain http to a host other than localhost.
var refusedInsecure = &passkeyRefusal{"not_secure_context", "Passkeys work only over https (or on localhost). Use a code instead."}

// checkAccountPasskey checks raw, a passkey's answer the signed-in user s
// gives as a fresh second factor for the account action of kind (turning
// two-factor authentication off, a new set of backup codes, a new
// password). The rules are
// those of the second-factor step: the ceremony must be of this kind,
// bound to this session and in time; answerAssertion checks origin, RP ID
// and signature, spends the challenge (accepted or not) and moves the
// counter. The caller counts a refusal toward the lockout.
func (g *Gateway) checkAccountPasskey(w http.ResponseWriter, r *http.Request, s *Session, kind ceremonyKind, raw string) (*passkeyRefusal, error) {
	site, ok := g.passkeySite(r)
	if !ok {
		return refusedInsecure, nil
	}
	if raw == "" {
		return refusedInvalid, nil
	}
	c, err := g.readCeremony(r, kind, sessionBinding(s), g.cfg.Clock.Now())
	if err != nil || c.User != s.User {
		return refusedExpired, nil
	}
	g.clearCookie(w, r, g.ceremonyCookieName(kind))
	_, refusal, err := g.answerAssertion(r, site, c, raw, g.loadAccount)
	return refusal, err
}

// accountPasskey offers the signed-in user's passkeys on a page for the
// account action of kind: the options of a ceremony bound to this session,
// or "" where the request or the user has no passkey to offer.
func (g *Gateway) accountPasskey(w http.ResponseWriter, r *http.Request, s *Session, acct *account.Account, kind ceremonyKind) string {
	site, ok := g.passkeySite(r)
	if !ok || !hasPasskeysFor(acct, site) {
		return ""
	}
	assertion, err := g.assertionOptions(w, r, site, kind, acct, sessionBinding(s))
	if err != nil {
		g.cfg.Logger.Error("totp_auth: start passkey assertion", zap.Error(err))
		return ""
	}
	opts, err := optionsAttr(assertion.Response)
	if err != nil {
		return ""
	}
	return opts
}

// accountPasskeyOptions answers the request options with which the
// signed-in user confirms the account action of kind with a passkey:
// POST disable/options for POST disable {password, credential}, POST
// backup-codes/options for POST backup-codes {credential}, POST
// password/options for POST password {current, new, credential}. A user who
// must regenerate backup codes may still ask for the latter.
func (g *Gateway) accountPasskeyOptions(kind ceremonyKind) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		site, ok := g.passkeySite(r)
		if !ok {
			g.passkeysOff(w, r)
			return
		}
		s, _, ok := g.checkSession(w, r, kind == ceremonyBackupCodes)
		if !ok {
			return
		}
		if _, ok := g.readPost(w, r); !ok {
			return
		}
		acct, err := g.cfg.Store.Account(s.User)
		if err != nil {
			g.internalError(w, r, "read account", err)
			return
		}
		if !hasPasskeysFor(&acct, site) {
			g.problem(w, r, problem{status: http.StatusNotFound, code: codeNoPasskeys, msg: "You have no passkey for this site."}, page{Title: "No passkey"})
			return
		}
		assertion, err := g.assertionOptions(w, r, site, kind, &acct, sessionBinding(s))
		if err != nil {
			g.internalError(w, r, "start passkey assertion", err)
			return
		}
		writeJSON(w, http.StatusOK, assertion)
	}
}
