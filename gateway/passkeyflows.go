package gateway

import (
	"github.com/totp-auth/totp_auth/gateway/account"

	"bytes"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"
)

// The passkey flows of SPEC §14: registering one (at first sign-in, or
// from the account page after the password), the second factor with one,
// signing in with one alone (passkey_login), listing, renaming and
// removing them.

// passkeysOff answers a passkey request on a block without passkeys, or
// one that cannot use them (no secure context).
func (g *Gateway) passkeysOff(w http.ResponseWriter, r *http.Request) {
	msg := "Passkeys are not turned on for this site."
	if g.cfg.Passkeys {
		msg = "Passkeys work only over https (or on localhost). Use your authenticator app instead."
	}
	g.problem(w, r, problem{status: http.StatusNotFound, code: "passkeys_off", msg: msg}, page{Title: "Passkeys unavailable"})
}

// passkeyRegistrant is who may register a passkey: a pending sign-in that
// must enroll, or a signed-in user.
type passkeyRegistrant struct {
	user    string
	pending *PendingLogin
	session *Session
	binding string
}

// requireRegistrant returns who is registering, or answers as the
// enrollment and session guards do.
func (g *Gateway) requireRegistrant(w http.ResponseWriter, r *http.Request) (passkeyRegistrant, bool) {
	p, _, err := g.pending(r, g.cfg.Clock.Now())
	if err != nil {
		g.internalError(w, r, "check pending sign-in", err)
		return passkeyRegistrant{}, false
	}
	if p != nil && p.Stage == stageEnroll {
		return passkeyRegistrant{user: p.User, pending: p, binding: g.pendingBinding(r)}, true
	}
	s, _, ok := g.requireSessionInRecovery(w, r)
	if !ok {
		return passkeyRegistrant{}, false
	}
	return passkeyRegistrant{user: s.User, session: s, binding: sessionBinding(s)}, true
}

// postPasskeyNew answers creation options: at once for a first sign-in
// that must enroll, after the password for a signed-in user (like SPEC §4
// rule 21). Browsers get the page that creates the passkey.
func (g *Gateway) postPasskeyNew(w http.ResponseWriter, r *http.Request) {
	site, ok := g.passkeySite(r)
	if !ok {
		g.passkeysOff(w, r)
		return
	}
	reg, ok := g.requireRegistrant(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	pg := page{Title: "Add a passkey", User: reg.user, Continue: g.cfg.Prefix + "/account"}
	acct, err := g.cfg.Store.Account(reg.user)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if reg.pending != nil && acct.HasSecondFactor() {
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: "unauthenticated", msg: "Please sign in again."}, page{Title: "Sign in again"})
		return
	}
	if reg.session != nil {
		if f.get("password") == "" {
			g.problem(w, r, problem{status: http.StatusForbidden, code: "password_required", msg: "Enter your password first.", page: "account"}, g.accountPage(w, r, reg.session, &acct))
			return
		}
		a, ok := g.beginAttempt(w, r, EventPasskeyAdded, reg.user, "", pg)
		if !ok {
			return
		}
		match, answered := g.passwordMatches(w, r, a, EventPasskeyAdded, reg.user, f.get("password"))
		if answered {
			return
		}
		if !match {
			note := g.failAttempt(r, a, reg.user)
			g.audit(r, EventPasskeyAdded, OutcomeFailure, reg.user)
			ap := g.accountPage(w, r, reg.session, &acct)
			g.problem(w, r, problem{status: http.StatusUnauthorized, code: "invalid_credentials", msg: "Wrong password: no passkey was added." + note, page: "account"}, ap)
			return
		}
		g.releaseAttempt(a)
	}
	creation, err := g.registrationOptions(w, r, site, &acct, reg.binding)
	if err != nil {
		g.internalError(w, r, "start passkey registration", err)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, creation)
		return
	}
	opts, err := optionsAttr(creation.Response)
	if err != nil {
		g.internalError(w, r, "encode passkey options", err)
		return
	}
	pg.PasskeyCreate = opts
	pg.PasskeyName = "account.Passkey"
	g.render(w, r, http.StatusOK, "passkey-new", pg)
}

// postPasskeys registers the passkey a page or API client created from
// the options of postPasskeyNew. At a first sign-in it ends the
// enrollment: the backup codes come with it and the session starts.
func (g *Gateway) postPasskeys(w http.ResponseWriter, r *http.Request) {
	site, ok := g.passkeySite(r)
	if !ok {
		g.passkeysOff(w, r)
		return
	}
	reg, ok := g.requireRegistrant(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	now := g.cfg.Clock.Now()
	pg := page{Title: "Add a passkey", User: reg.user, Continue: g.cfg.Prefix + "/account"}
	if reg.pending != nil {
		pg.Continue = g.cfg.Prefix + "/setup"
	}
	a, acct, ok := g.beginAccountAttempt(w, r, EventPasskeyAdded, reg.user, "", pg)
	if !ok {
		return
	}
	if reg.pending != nil && acct.HasSecondFactor() {
		g.releaseAttempt(a)
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: "unauthenticated", msg: "Please sign in again."}, page{Title: "Sign in again"})
		return
	}
	c, err := g.readCeremony(r, ceremonyRegister, reg.binding, now)
	if err != nil || c.User != reg.user {
		g.releaseAttempt(a)
		g.refusePasskey(w, r, http.StatusBadRequest, EventPasskeyAdded, reg.user, refusedExpired, "", "", pg)
		return
	}
	g.clearCookie(w, r, g.ceremonyCookieName())
	pk, refusal := g.verifyRegistration(r, site, c, &acct, f.get("credential"), now)
	pk.Name = f.get("name")
	first := !acct.HasSecondFactor()
	var codes []string
	var hashes [][]byte
	if refusal == nil && first {
		var herr error
		if err := g.hash(r, func() { codes, hashes, herr = newBackupCodes(g.cfg.BackupCodeCost) }); err != nil {
			g.busy(w, r, a, EventPasskeyAdded, reg.user)
			return
		}
		if herr != nil {
			g.releaseAttempt(a)
			g.internalError(w, r, "make backup codes", herr)
			return
		}
	}
	var added error
	err = g.cfg.Store.UpdateAccount(reg.user, func(acct *account.Account) error {
		added = nil
		if err := acct.SpendChallenge(c.Data.Challenge, c.Expires, now); err != nil {
			return err
		}
		switch {
		case refusal != nil:
		case reg.pending != nil && acct.HasSecondFactor():
			added = account.ErrNoEnrollment
		case first && !acct.HasSecondFactor():
			added = acct.EnrollPasskey(pk, hashes)
		default:
			added = acct.AddPasskey(pk)
		}
		return nil
	})
	switch {
	case errors.Is(err, account.ErrChallengeUsed):
		refusal = refusedReplay
	case errors.Is(err, account.ErrTooManyChallenges):
		refusal = refusedBusy
	case err != nil:
		g.releaseAttempt(a)
		g.internalError(w, r, "add passkey", err)
		return
	case errors.Is(added, account.ErrPasskeyExists):
		refusal = &passkeyRefusal{"already_registered", "This passkey is registered already."}
	case errors.Is(added, account.ErrTooManyPasskeys):
		refusal = &passkeyRefusal{"too_many_passkeys", "You have the most passkeys one account may have. Remove one first."}
	case errors.Is(added, account.ErrNoEnrollment):
		refusal = refusedExpired
	case added != nil:
		g.releaseAttempt(a)
		g.internalError(w, r, "add passkey", added)
		return
	}
	if refusal != nil {
		g.failAttempt(r, a, reg.user)
		g.refusePasskey(w, r, http.StatusBadRequest, EventPasskeyAdded, reg.user, refusal, "invalid_passkey", "", pg)
		return
	}
	g.releaseAttempt(a)
	g.audit(r, EventPasskeyAdded, OutcomeOK, reg.user, zap.String("passkey", encodeID(pk.ID)))
	id := encodeID(pk.ID)
	s := Session{User: reg.user, Generation: acct.Generation}
	if reg.session != nil {
		s = *reg.session
	}
	switch {
	case reg.pending != nil:
		g.audit(r, EventEnrollment, OutcomeOK, reg.user, methodField(FactorPasskey.String()))
		if s.ID, err = newSessionID(); err != nil {
			g.internalError(w, r, "start session", err)
			return
		}
		if !g.completeSignIn(w, r, s, g.cfg.Clock.Now(), FactorPasskey) {
			return
		}
	case s.Level < LevelTwoFactor:
		// Turned on from a password-only session: it has now proven a
		// second factor.
		if err := g.startSession(w, r, Session{User: s.User, ID: s.ID, Generation: s.Generation}, FactorPasskey, g.cfg.Clock.Now()); err != nil {
			g.internalError(w, r, "set session cookie", err)
			return
		}
	}
	if wantsJSON(r) {
		body := map[string]any{"status": "ok", "id": id}
		if first {
			body["backup_codes"] = codes
		}
		writeJSON(w, http.StatusOK, body)
		return
	}
	if first {
		next := g.cfg.Prefix + "/account"
		if reg.pending != nil {
			next = g.safeRedirect(r, reg.pending.Redirect)
		}
		g.showCodesOnce(w, r, s, codesEnrolled, codes, next)
		return
	}
	http.Redirect(w, r, g.cfg.Prefix+"/account?added=passkey", http.StatusSeeOther)
}

// verifyRegistration has go-webauthn check a new credential against the
// ceremony c and returns it as a account.Passkey scoped to site.
func (g *Gateway) verifyRegistration(r *http.Request, site passkeySite, c ceremony, acct *account.Account, raw string, now time.Time) (account.Passkey, *passkeyRefusal) {
	if raw == "" || len(raw) > maxBody {
		return account.Passkey{}, refusedInvalid
	}
	rp, err := g.relyingParty(r, site)
	if err != nil {
		return account.Passkey{}, refusedInvalid
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(raw))
	if err != nil {
		return account.Passkey{}, refusedInvalid
	}
	cred, err := rp.CreateCredential(passkeyUser{acct: acct, rpID: site.rpID}, c.Data, parsed)
	if err != nil {
		g.cfg.Logger.Debug("totp_auth: passkey registration refused", zap.String("user", acct.Name), zap.Error(err))
		return account.Passkey{}, refusalOf(err)
	}
	transports := make([]string, len(cred.Transport))
	for i, t := range cred.Transport {
		transports[i] = string(t)
	}
	return account.Passkey{
		ID:              cred.ID,
		PublicKey:       cred.PublicKey,
		AttestationType: cred.AttestationType,
		SignCount:       cred.Authenticator.SignCount,
		BackupEligible:  cred.Flags.BackupEligible,
		BackupState:     cred.Flags.BackupState,
		UserVerified:    cred.Flags.UserVerified,
		AAGUID:          cred.Authenticator.AAGUID,
		Transports:      transports,
		RPID:            site.rpID,
		Discoverable:    c.Discoverable,
		Created:         now,
	}, nil
}

// assertionResult is an answer to an assertion ceremony, after the store
// recorded it.
type assertionResult struct {
	user    string
	passkey account.Passkey
}

// answerAssertion has go-webauthn verify raw, an answer to the ceremony c,
// and records it in one atomic update: the challenge is spent whether the
// answer is accepted or not, and an accepted one's signature counter must
// grow (account.Account.UsePasskey). acct is the user the ceremony named; for a
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
func (g *Gateway) refusePasskey(w http.ResponseWriter, r *http.Request, status int, kind EventKind, user string, why *passkeyRefusal, code, pageName string, p page) {
	g.audit(r, kind, OutcomeFailure, user, methodField(FactorPasskey.String()), zap.String("reason", why.reason))
	if code == "" {
		code = "invalid_passkey"
		if why == refusedExpired {
			code = "passkey_expired"
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
		g.problem(w, r, problem{status: http.StatusNotFound, code: "no_passkeys", msg: "You have no passkey for this site. Enter a code instead."}, page{Title: "No passkey"})
		return
	}
	assertion, err := g.assertionOptions(w, r, site, ceremonySecondFactor, &acct, g.pendingBinding(r))
	if err != nil {
		g.internalError(w, r, "start passkey assertion", err)
		return
	}
	writeJSON(w, http.StatusOK, assertion)
}

// secondFactorPasskey offers the pending sign-in's passkeys on the 2fa
// page: the options are in the page before the click.
func (g *Gateway) secondFactorPasskey(w http.ResponseWriter, r *http.Request, user string) string {
	site, ok := g.passkeySite(r)
	if !ok {
		return ""
	}
	acct, err := g.cfg.Store.Account(user)
	if err != nil || !hasPasskeysFor(&acct, site) {
		return ""
	}
	assertion, err := g.assertionOptions(w, r, site, ceremonySecondFactor, &acct, g.pendingBinding(r))
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
		pg.PasskeyGet = g.secondFactorPasskey(w, r, p.User)
		g.refusePasskey(w, r, http.StatusUnauthorized, EventSecondFactor, p.User, refusedExpired, "invalid_passkey", "2fa", pg)
		return
	}
	g.clearCookie(w, r, g.ceremonyCookieName())
	res, refusal, err := g.answerAssertion(r, site, c, raw, g.loadAccount)
	if err != nil {
		g.releaseAttempt(a)
		g.internalError(w, r, "check passkey", err)
		return
	}
	if refusal != nil {
		note := g.failAttempt(r, a, p.User)
		pg.PasskeyGet = g.secondFactorPasskey(w, r, p.User)
		refusal = &passkeyRefusal{refusal.reason, refusal.msg + note}
		g.refusePasskey(w, r, http.StatusUnauthorized, EventSecondFactor, p.User, refusal, "invalid_passkey", "2fa", pg)
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
		jsonError(w, http.StatusNotFound, "passkeys_off")
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
		g.refusePasskey(w, r, http.StatusUnauthorized, EventPassword, "", refusedExpired, "invalid_passkey", "login", pg)
		return
	}
	g.clearCookie(w, r, g.ceremonyCookieName())
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
		g.refusePasskey(w, r, http.StatusUnauthorized, EventSecondFactor, subject, refusal, "invalid_passkey", "login", pg)
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

// passkeyView is a passkey as the JSON API and the account page show it.
type passkeyView struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Created  string `json:"created"`
	LastUsed string `json:"last_used,omitempty"`
}

func passkeyViews(ps []account.Passkey) []passkeyView {
	out := make([]passkeyView, 0, len(ps))
	for _, p := range ps {
		v := passkeyView{ID: encodeID(p.ID), Name: p.Name, Created: p.Created.UTC().Format(time.RFC3339)}
		if !p.LastUsed.IsZero() {
			v.LastUsed = p.LastUsed.UTC().Format(time.RFC3339)
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
		http.Redirect(w, r, g.cfg.Prefix+"/account", http.StatusSeeOther)
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
		g.problem(w, r, problem{status: http.StatusNotFound, code: "not_found", msg: "There is no such passkey.", page: "account"}, pg)
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
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: "invalid_credentials", msg: "Wrong password: the passkey is still there." + note, page: "account"}, pg)
		return
	}
	g.releaseAttempt(a)
	err = g.cfg.Store.UpdateAccount(s.User, func(a *account.Account) error { return a.RemovePasskey(id, !g.cfg.Optional2FA) })
	switch {
	case errors.Is(err, account.ErrLastFactor):
		g.audit(r, EventPasskeyRemoved, OutcomeRefused, s.User, zap.String("reason", "last_factor"))
		g.problem(w, r, problem{status: http.StatusConflict, code: "last_factor",
			msg: "This is your last second factor, and this site requires one. Add another passkey or an authenticator app first, or turn two-factor authentication off.", page: "account"}, pg)
		return
	case errors.Is(err, account.ErrNoPasskey):
		g.problem(w, r, problem{status: http.StatusNotFound, code: "not_found", msg: "There is no such passkey.", page: "account"}, pg)
		return
	case err != nil:
		g.internalError(w, r, "remove passkey", err)
		return
	}
	g.audit(r, EventPasskeyRemoved, OutcomeOK, s.User, zap.String("passkey", encodeID(id)))
	g.seeOther(w, r, g.cfg.Prefix+"/account?removed=passkey", map[string]string{"status": "ok"})
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
		g.problem(w, r, problem{status: http.StatusNotFound, code: "not_found", msg: "There is no such passkey.", page: "account"}, g.accountPage(w, r, s, &acct))
		return
	}
	if err != nil {
		g.internalError(w, r, "rename passkey", err)
		return
	}
	g.seeOther(w, r, g.cfg.Prefix+"/account", map[string]string{"status": "ok"})
}

// checkDisablePasskey checks a passkey's answer given to turn two-factor
// authentication off, for a user with passkeys and no TOTP (SPEC §14).
func (g *Gateway) checkDisablePasskey(w http.ResponseWriter, r *http.Request, s *Session, raw string) (bool, error) {
	site, ok := g.passkeySite(r)
	if !ok || raw == "" {
		return false, nil
	}
	c, err := g.readCeremony(r, ceremonyDisable, sessionBinding(s), g.cfg.Clock.Now())
	if err != nil || c.User != s.User {
		return false, nil
	}
	g.clearCookie(w, r, g.ceremonyCookieName())
	_, refusal, err := g.answerAssertion(r, site, c, raw, g.loadAccount)
	return refusal == nil && err == nil, err
}

// disablePasskey offers the signed-in user's passkeys on the account page,
// for turning two-factor authentication off without a TOTP code.
func (g *Gateway) disablePasskey(w http.ResponseWriter, r *http.Request, s *Session, acct *account.Account) string {
	site, ok := g.passkeySite(r)
	if !ok || !hasPasskeysFor(acct, site) {
		return ""
	}
	assertion, err := g.assertionOptions(w, r, site, ceremonyDisable, acct, sessionBinding(s))
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

// enrollmentPasskey offers a passkey beside the authenticator app at a
// first sign-in that must enroll: the creation options for the setup page.
func (g *Gateway) enrollmentPasskey(w http.ResponseWriter, r *http.Request, e enrollee, acct *account.Account) string {
	site, ok := g.passkeySite(r)
	if !ok || e.pending == nil || acct.HasSecondFactor() {
		return ""
	}
	creation, err := g.registrationOptions(w, r, site, acct, g.pendingBinding(r))
	if err != nil {
		g.cfg.Logger.Error("totp_auth: start passkey registration", zap.Error(err))
		return ""
	}
	opts, err := optionsAttr(creation.Response)
	if err != nil {
		return ""
	}
	return opts
}

// postDisableOptions answers the request options with which a user who has
// passkeys and no TOTP turns two-factor authentication off (POST disable
// {password, credential}).
func (g *Gateway) postDisableOptions(w http.ResponseWriter, r *http.Request) {
	site, ok := g.passkeySite(r)
	if !ok {
		g.passkeysOff(w, r)
		return
	}
	s, _, ok := g.requireSession(w, r)
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
		g.problem(w, r, problem{status: http.StatusNotFound, code: "no_passkeys", msg: "You have no passkey for this site."}, page{Title: "No passkey"})
		return
	}
	assertion, err := g.assertionOptions(w, r, site, ceremonyDisable, &acct, sessionBinding(s))
	if err != nil {
		g.internalError(w, r, "start passkey assertion", err)
		return
	}
	writeJSON(w, http.StatusOK, assertion)
}
