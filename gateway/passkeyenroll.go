package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Registering a passkey (SPEC §14): at a first sign-in that must enroll,
// where it ends the enrollment like a first TOTP code, or from the account
// page after the password (like SPEC §4 rule 21).

// passkeyRegistrant is who may register a passkey: a pending sign-in that
// must enroll, or a signed-in user.
type passkeyRegistrant struct {
	user    string
	pending *PendingLogin
	session *Session
	binding string
	// passwordDue is set where the password comes before the options: a
	// signed-in user, or a password-only session sent to enroll by a
	// block that requires 2FA (step-up).
	passwordDue bool
}

// requireRegistrant returns who is registering, or answers as the
// enrollment and session guards do.
func (g *Gateway) requireRegistrant(w http.ResponseWriter, r *http.Request) (passkeyRegistrant, bool) {
	p, _, err := g.pending(r, g.cfg.Clock.Now())
	if err != nil {
		g.internalError(w, r, "check pending sign-in", err)
		return passkeyRegistrant{}, false
	}
	if p != nil && p.ID != 0 && (p.Stage == stageEnroll || p.Stage == stageEnrollPassword) {
		return passkeyRegistrant{user: p.User, pending: p, binding: g.pendingBinding(r), passwordDue: p.Stage == stageEnrollPassword}, true
	}
	s, _, ok := g.requireSessionInRecovery(w, r)
	if !ok {
		return passkeyRegistrant{}, false
	}
	return passkeyRegistrant{user: s.User, session: s, binding: sessionBinding(s), passwordDue: true}, true
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
	pg := page{Title: "Add a passkey", User: reg.user, Continue: g.pageURL(pathAccount)}
	acct, err := g.cfg.Store.Account(reg.user)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	pg.setFactors(&acct)
	if reg.pending != nil && acct.HasSecondFactor() {
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: codeUnauthenticated, msg: "Please sign in again."}, page{Title: "Sign in again"})
		return
	}
	if reg.passwordDue {
		// Where the password is refused, a signed-in user sees the
		// account page again, a step-up the message page.
		refusedAt, refusedPage := "", pg
		if reg.session != nil {
			refusedAt, refusedPage = "account", g.accountPage(w, r, reg.session, &acct)
		}
		if f.get("password") == "" {
			g.problem(w, r, problem{status: http.StatusForbidden, code: codePasswordRequired, msg: "Enter your password first.", page: refusedAt}, refusedPage)
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
			g.problem(w, r, problem{status: http.StatusUnauthorized, code: codeInvalidCredentials, msg: "Wrong password: no passkey was added." + note, page: refusedAt}, refusedPage)
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
	pg := page{Title: "Add a passkey", User: reg.user, Continue: g.pageURL(pathAccount)}
	if reg.pending != nil {
		pg.Continue = g.pageURL(pathSetup)
	}
	a, acct, ok := g.beginAccountAttempt(w, r, EventPasskeyAdded, reg.user, "", pg)
	if !ok {
		return
	}
	if reg.pending != nil && acct.HasSecondFactor() {
		g.releaseAttempt(a)
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: codeUnauthenticated, msg: "Please sign in again."}, page{Title: "Sign in again"})
		return
	}
	c, err := g.readCeremony(r, ceremonyRegister, reg.binding, now)
	if err != nil || c.User != reg.user {
		g.releaseAttempt(a)
		g.refusePasskey(w, r, http.StatusBadRequest, EventPasskeyAdded, reg.user, refusedExpired, errorCode{}, "", pg)
		return
	}
	g.clearCookie(w, r, g.ceremonyCookieName(c.Kind))
	pk, refusal := g.verifyRegistration(r, site, c, &acct, f.get("credential"), now)
	pk.Name = f.get("name")
	first := !acct.HasSecondFactor()
	var codes []string
	var hashes [][]byte
	if refusal == nil && first {
		var busy bool
		var herr error
		if codes, hashes, busy, herr = g.newBackupCodeSet(r); busy {
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
		g.refusePasskey(w, r, http.StatusBadRequest, EventPasskeyAdded, reg.user, refusal, codeInvalidPasskey, "", pg)
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
		next := g.pageURL(pathAccount)
		if reg.pending != nil {
			next = g.safeRedirect(r, reg.pending.Redirect)
		}
		g.showCodesOnce(w, r, s, codesEnrolled, codes, next)
		return
	}
	http.Redirect(w, r, g.pageURL(pathAccount)+"?added=passkey", http.StatusSeeOther)
}

// verifyRegistration has go-webauthn check a new credential against the
// ceremony c and returns it as a Passkey scoped to site.
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

// enrollmentPasskey offers a passkey beside the authenticator app at a
// first sign-in that must enroll: the creation options for the setup page.
func (g *Gateway) enrollmentPasskey(w http.ResponseWriter, r *http.Request, e enrollee, acct *account.Account) string {
	site, ok := g.passkeySite(r)
	if !ok || e.pending == nil || e.passwordDue || acct.HasSecondFactor() {
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
