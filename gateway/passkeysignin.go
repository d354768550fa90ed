package gateway

import (
	"bytes"
	"errors"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Signing in with a passkey (SPEC §14): as the second factor after the
// password, or alone where passkey_login is on. Every answer goes through
// answerAssertion: go-webauthn verifies it, and one atomic update spends
// its challenge and moves its counter.

// assertionResult is an answer to an assertion ceremony, after the store
// recorded it.
type assertionResult struct {
	user    string
	passkey account.Passkey
}

// answerAssertion has go-webauthn verify raw, an answer to the ceremony c,
// and records it in one atomic update: the challenge is spent whether the
// answer is accepted or not, and an accepted one's signature counter must
// grow (Account.UsePasskey). acct is the user the ceremony named; for a
// passkey_login ceremony it is nil and the credential's user handle names
// the user (loaded by load).
func (g *Gateway) answerAssertion(r *http.Request, site passkeySite, c ceremony, raw string, load func(user string) (*account.Account, error)) (assertionResult, *passkeyRefusal, error) {
	now := g.cfg.Clock.Now()
	if raw == "" || len(raw) > maxBody {
		return assertionResult{user: c.User}, refusedInvalid, nil
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(raw))
	if err != nil {
		return assertionResult{user: c.User}, refusedInvalid, nil
	}
	user := c.User
	if c.Kind == ceremonyLogin {
		user = CanonicalUser(string(parsed.Response.UserHandle))
		if user == "" || user != string(parsed.Response.UserHandle) {
			return assertionResult{}, refusedUnknown, nil
		}
	}
	acct, err := load(user)
	if err != nil {
		return assertionResult{user: user}, nil, err
	}
	rp, err := g.relyingParty(r, site)
	if err != nil {
		return assertionResult{user: user}, nil, err
	}
	pu := passkeyUser{acct: acct, rpID: site.rpID}
	var refusal *passkeyRefusal
	if len(pu.WebAuthnCredentials()) == 0 {
		refusal = refusedUnknown
	} else {
		var verr error
		if c.Kind == ceremonyLogin {
			_, _, verr = rp.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
				if !bytes.Equal(userHandle, pu.WebAuthnID()) {
					return nil, errors.New("user handle names another user")
				}
				return pu, nil
			}, c.Data, parsed)
		} else {
			_, verr = rp.ValidateLogin(pu, c.Data, parsed)
		}
		if verr != nil {
			g.cfg.Logger.Debug("totp_auth: passkey assertion refused", zap.String("user", user), zap.Error(verr))
			refusal = refusalOf(verr)
		}
	}
	id := parsed.RawID
	counter := parsed.Response.AuthenticatorData.Counter
	backedUp := parsed.Response.AuthenticatorData.Flags.HasBackupState()
	var used error
	err = g.cfg.Store.UpdateAccount(user, func(a *account.Account) error {
		used = nil
		if err := a.SpendChallenge(c.Data.Challenge, c.Expires, now); err != nil {
			return err
		}
		if refusal == nil {
			used = a.UsePasskey(id, counter, backedUp, now)
		}
		return nil
	})
	switch {
	case errors.Is(err, account.ErrChallengeUsed):
		return assertionResult{user: user}, refusedReplay, nil
	case errors.Is(err, account.ErrTooManyChallenges):
		return assertionResult{user: user}, refusedBusy, nil
	case err != nil:
		return assertionResult{user: user}, nil, err
	case refusal != nil:
		return assertionResult{user: user}, refusal, nil
	case errors.Is(used, account.ErrPasskeyClone):
		return assertionResult{user: user}, refusedClone, nil
	case errors.Is(used, account.ErrNoPasskey):
		return assertionResult{user: user}, refusedUnknown, nil
	case used != nil:
		return assertionResult{user: user}, nil, used
	}
	pk, _ := acct.Passkey(id)
	return assertionResult{user: user, passkey: pk}, nil, nil
}

// refusePasskey logs a refused passkey answer with its reason and answers
// it: JSON code (default invalid_passkey) for API clients, the words for
// people.
func (g *Gateway) refusePasskey(w http.ResponseWriter, r *http.Request, status int, kind EventKind, user string, why *passkeyRefusal, code errorCode, pageName string, p page) {
	g.audit(r, kind, OutcomeFailure, user, methodField(FactorPasskey.String()), zap.String("reason", why.reason))
	if code == (errorCode{}) {
		code = codeInvalidPasskey
		if why == refusedExpired {
			code = codePasskeyExpired
		}
	}
	g.problem(w, r, problem{status: status, code: code, msg: why.msg, page: pageName}, p)
}

// postSecondFactorOptions answers the request options for the pending
// sign-in's passkeys.
func (g *Gateway) postSecondFactorOptions(w http.ResponseWriter, r *http.Request) {
	site, ok := g.passkeySite(r)
	if !ok {
		g.passkeysOff(w, r)
		return
	}
	p, ok := g.requirePending(w, r, stageSecondFactor)
	if !ok {
		return
	}
	if _, ok := g.readPost(w, r); !ok {
		return
	}
	acct, err := g.cfg.Store.Account(p.User)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if !hasPasskeysFor(&acct, site) {
		g.problem(w, r, problem{status: http.StatusNotFound, code: codeNoPasskeys, msg: "You have no passkey for this site. Enter a code instead."}, page{Title: "No passkey"})
		return
	}
	assertion, err := g.assertionOptions(w, r, site, ceremonySecondFactor, &acct, g.pendingBinding(r))
	if err != nil {
		g.internalError(w, r, "start passkey assertion", err)
		return
	}
	writeJSON(w, http.StatusOK, assertion)
}

// offerSecondFactor fills the 2fa page of p.User: the factors its words
// name and, where the user has passkeys here, the options of a passkey
// ceremony, in the page before the click.
func (g *Gateway) offerSecondFactor(w http.ResponseWriter, r *http.Request, p *page) {
	acct, err := g.cfg.Store.Account(p.User)
	if err != nil {
		return
	}
	p.setFactors(&acct)
	site, ok := g.passkeySite(r)
	if !ok || !hasPasskeysFor(&acct, site) {
		return
	}
	assertion, err := g.assertionOptions(w, r, site, ceremonySecondFactor, &acct, g.pendingBinding(r))
	if err != nil {
		g.cfg.Logger.Error("totp_auth: start passkey assertion", zap.Error(err))
		return
	}
	if p.PasskeyGet, err = optionsAttr(assertion.Response); err != nil {
		p.PasskeyGet = ""
	}
}

// postSecondFactorPasskey is POST 2fa with a passkey's answer.
func (g *Gateway) postSecondFactorPasskey(w http.ResponseWriter, r *http.Request, p PendingLogin, raw string) {
	pg := page{Title: "Two-factor authentication", User: p.User}
	site, ok := g.passkeySite(r)
	if !ok {
		g.passkeysOff(w, r)
		return
	}
	a, _, ok := g.beginAccountAttempt(w, r, EventSecondFactor, p.User, "2fa", pg)
	if !ok {
		return
	}
	now := g.cfg.Clock.Now()
	c, err := g.readCeremony(r, ceremonySecondFactor, g.pendingBinding(r), now)
	if err != nil || c.User != p.User {
		g.failAttempt(r, a, p.User)
		g.offerSecondFactor(w, r, &pg)
		g.refusePasskey(w, r, http.StatusUnauthorized, EventSecondFactor, p.User, refusedExpired, codeInvalidPasskey, "2fa", pg)
		return
	}
	g.clearCookie(w, r, g.ceremonyCookieName(c.Kind))
	res, refusal, err := g.answerAssertion(r, site, c, raw, g.loadAccount)
	if err != nil {
		g.releaseAttempt(a)
		g.internalError(w, r, "check passkey", err)
		return
	}
	if refusal != nil {
		note := g.failAttempt(r, a, p.User)
		g.offerSecondFactor(w, r, &pg)
		refusal = &passkeyRefusal{refusal.reason, refusal.msg + note}
		g.refusePasskey(w, r, http.StatusUnauthorized, EventSecondFactor, p.User, refusal, codeInvalidPasskey, "2fa", pg)
		return
	}
	g.releaseAttempt(a)
	acct, err := g.cfg.Store.Account(p.User)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if !g.completeSignIn(w, r, Session{User: p.User, Generation: acct.Generation}, g.cfg.Clock.Now(), FactorPasskey) {
		return
	}
	g.audit(r, EventSecondFactor, OutcomeOK, p.User, methodField(FactorPasskey.String()), zap.String("passkey", encodeID(res.passkey.ID)))
	redirect := g.safeRedirect(r, p.Redirect)
	g.seeOther(w, r, redirect, map[string]string{"status": "ok", "redirect": redirect})
}

func (g *Gateway) loadAccount(user string) (*account.Account, error) {
	acct, err := g.cfg.Store.Account(user)
	return &acct, err
}

// loginPasskey offers a sign-in with a passkey alone on the login page,
// where passkey_login is on.
func (g *Gateway) loginPasskey(w http.ResponseWriter, r *http.Request) string {
	if !g.cfg.PasskeyLogin {
		return ""
	}
	site, ok := g.passkeySite(r)
	if !ok {
		return ""
	}
	assertion, err := g.assertionOptions(w, r, site, ceremonyLogin, nil, "")
	if err != nil {
		g.cfg.Logger.Error("totp_auth: start passkey sign-in", zap.Error(err))
		return ""
	}
	opts, err := optionsAttr(assertion.Response)
	if err != nil {
		return ""
	}
	return opts
}

// postLoginOptions answers the options of a sign-in with a passkey alone.
func (g *Gateway) postLoginOptions(w http.ResponseWriter, r *http.Request) {
	site, ok := g.passkeySite(r)
	if !ok || !g.cfg.PasskeyLogin {
		jsonError(w, http.StatusNotFound, codePasskeysOff)
		return
	}
	if _, ok := g.readPost(w, r); !ok {
		return
	}
	assertion, err := g.assertionOptions(w, r, site, ceremonyLogin, nil, "")
	if err != nil {
		g.internalError(w, r, "start passkey sign-in", err)
		return
	}
	writeJSON(w, http.StatusOK, assertion)
}

// postPasskeyLogin is POST login with a passkey's answer (passkey_login):
// a discoverable credential whose authenticator verified the user. It
// counts toward the lockout of the user it names and of the client.
func (g *Gateway) postPasskeyLogin(w http.ResponseWriter, r *http.Request, raw, redirect string) {
	pg := page{Title: "Sign in", Redirect: redirect}
	site, ok := g.passkeySite(r)
	if !ok || !g.cfg.PasskeyLogin {
		g.passkeysOff(w, r)
		return
	}
	now := g.cfg.Clock.Now()
	c, err := g.readCeremony(r, ceremonyLogin, "", now)
	if err != nil {
		pg.PasskeyGet = g.loginPasskey(w, r)
		g.refusePasskey(w, r, http.StatusUnauthorized, EventPassword, "", refusedExpired, codeInvalidPasskey, "login", pg)
		return
	}
	g.clearCookie(w, r, g.ceremonyCookieName(c.Kind))
	// The user is named by the answer itself; until it verifies, the
	// name is counted and logged as the password step counts a typed one.
	user := ""
	if parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(raw)); err == nil {
		user = CanonicalUser(string(parsed.Response.UserHandle))
	}
	subject, err := g.subject(user)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	a, ok := g.beginAttempt(w, r, EventSecondFactor, subject, "login", pg)
	if !ok {
		return
	}
	var res assertionResult
	var refusal *passkeyRefusal
	if subject != user || user == "" {
		refusal = refusedUnknown
	} else if res, refusal, err = g.answerAssertion(r, site, c, raw, g.loadAccount); err != nil {
		g.releaseAttempt(a)
		g.internalError(w, r, "check passkey", err)
		return
	}
	if refusal != nil {
		note := g.failAttempt(r, a, subject)
		pg.PasskeyGet = g.loginPasskey(w, r)
		refusal = &passkeyRefusal{refusal.reason, refusal.msg + note}
		g.refusePasskey(w, r, http.StatusUnauthorized, EventSecondFactor, subject, refusal, codeInvalidPasskey, "login", pg)
		return
	}
	g.releaseAttempt(a)
	acct, err := g.cfg.Store.Account(res.user)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if !g.completeSignIn(w, r, Session{User: res.user, Generation: acct.Generation}, g.cfg.Clock.Now(), FactorPasskey) {
		return
	}
	g.seeOther(w, r, redirect, map[string]string{"status": "ok", "redirect": redirect})
}
