package gateway

import (
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Enrollment of an authenticator app (SPEC §3 flow 3), at first sign-in or
// when a signed-in user moves to a new app.

// enrollee is who may enroll: a pending login waiting for enrollment, or
// a signed-in user moving to a new authenticator.
type enrollee struct {
	user     string
	pending  *PendingLogin
	session  *Session // the signed-in user's session, when not pending
	redirect string
	// passwordDue is set for a pending sign-in that must give the password
	// before a secret is shown (a step-up from a password-only session).
	passwordDue bool
}

// binding is what the enrollee's secret is bound to: the session, or the
// pending sign-in (SPEC §4 rule 21).
func (e enrollee) binding() uint64 {
	if e.session != nil {
		return e.session.ID
	}
	return e.pending.ID
}

func (g *Gateway) requireEnrollee(w http.ResponseWriter, r *http.Request) (enrollee, bool) {
	now := g.cfg.Clock.Now()
	p, _, err := g.pending(r, now)
	if err != nil {
		g.internalError(w, r, "check pending sign-in", err)
		return enrollee{}, false
	}
	// A pending cookie without an id comes from before enrollments were
	// bound to sign-ins: it would share one secret, so its holder signs in
	// again.
	if p != nil && p.ID != 0 && (p.Stage == stageEnroll || p.Stage == stageEnrollPassword) {
		return enrollee{user: p.User, pending: p, redirect: g.safeRedirect(r, p.Redirect), passwordDue: p.Stage == stageEnrollPassword}, true
	}
	s, _, ok := g.requireSessionInRecovery(w, r)
	if !ok {
		return enrollee{}, false
	}
	return enrollee{user: s.User, session: s, redirect: g.pageURL(pathAccount)}, true
}

func (g *Gateway) getSetup(w http.ResponseWriter, r *http.Request) {
	e, ok := g.requireEnrollee(w, r)
	if !ok {
		return
	}
	g.showSetup(w, r, e, http.StatusOK, "")
}

// showSetup answers with the user's pending enrollment, as JSON or as the
// setup page showing errMsg. A first sign-in starts one if there is none;
// a signed-in user sees only the one their session asked for with the
// password, and is asked for the password otherwise (SPEC §4 rule 21).
func (g *Gateway) showSetup(w http.ResponseWriter, r *http.Request, e enrollee, status int, errMsg string) {
	acct, err := g.cfg.Store.Account(e.user)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if e.pending != nil && acct.HasSecondFactor() {
		// TOTP was enabled since the password step: enrolling again with a
		// password alone would bypass it.
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: codeUnauthenticated, msg: "Please sign in again."}, page{Title: "Sign in again"})
		return
	}
	now := g.cfg.Clock.Now()
	var enr account.Enrollment
	switch {
	case e.passwordDue:
		g.askPassword(w, r, e, acct, status, errMsg)
		return
	case e.session != nil:
		var ok bool
		if enr, ok = acct.PendingAt(now); !ok || enr.Session != e.session.ID {
			g.askPassword(w, r, e, acct, status, errMsg)
			return
		}
	default:
		// A first sign-in's secret is its own: a reload shows the same
		// one, another sign-in of the user gets another.
		if enr, err = account.EnrollmentFor(g.cfg.Store, e.user, e.pending.ID, now, newEnrollment(now)); err != nil {
			g.internalError(w, r, "start enrollment", err)
			return
		}
	}
	uri, err := otpauthURI(g.issuer(r), e.user, enr.Secret)
	if err != nil {
		g.internalError(w, r, "build otpauth URI", err)
		return
	}
	qr, err := qrDataURL(uri)
	if err != nil {
		g.internalError(w, r, "render QR code", err)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, status, map[string]string{"secret": enr.Secret, "otpauth_uri": uri, "qr_png": qr})
		return
	}
	moving := acct.TOTPSecret != ""
	g.render(w, r, status, "setup", page{
		Title: setupTitle(moving), User: e.user, QR: template.URL(qr), Secret: enr.Secret, SecretRows: keyRows(enr.Secret),
		// The URI carries the key, as the QR code does; following the link
		// sends nothing over the network: the system hands it to an app.
		OTPAuth: template.URL(uri),
		Expires: inWords(enr.Expires.Sub(now)), Moving: moving, CodesLeft: len(acct.BackupCodes), Error: errMsg,
		PasskeyCreate: g.enrollmentPasskey(w, r, e, &acct), PasskeyName: "Passkey",
	})
}

// askPassword answers a signed-in user whose session has no enrollment:
// 403 password_required for API clients (401 invalid_credentials after a
// wrong one), the password form for browsers. No secret is shown before
// the password.
func (g *Gateway) askPassword(w http.ResponseWriter, r *http.Request, e enrollee, acct account.Account, status int, errMsg string) {
	if wantsJSON(r) {
		if status == http.StatusUnauthorized {
			jsonError(w, status, codeInvalidCredentials)
			return
		}
		jsonError(w, http.StatusForbidden, codePasswordRequired)
		return
	}
	moving := acct.TOTPSecret != ""
	g.render(w, r, status, "setup", page{Title: setupTitle(moving), User: e.user, Moving: moving,
		CodesLeft: len(acct.BackupCodes), Error: errMsg})
}

// newEnrollment makes a fresh secret, confirmable for EnrollmentTTL from now.
func newEnrollment(now time.Time) func() (account.Enrollment, error) {
	return func() (account.Enrollment, error) {
		secret, err := newTOTPSecret()
		return account.Enrollment{Secret: secret, Expires: now.Add(EnrollmentTTL)}, err
	}
}

// setupTitle names the setup page: a first enrollment, or a move to a new
// authenticator app.
func setupTitle(moving bool) string {
	if moving {
		return "Move to a new authenticator app"
	}
	return "Set up two-factor authentication"
}

func (g *Gateway) postSetup(w http.ResponseWriter, r *http.Request) {
	e, ok := g.requireEnrollee(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	pg := page{Title: setupTitle(e.pending == nil), Continue: g.pageURL(pathSetup)}
	// refuse answers API clients with the error code and shows browsers
	// the setup form again, with the message.
	refuse := func(status int, code errorCode, msg string) {
		if wantsJSON(r) {
			jsonError(w, status, code)
			return
		}
		g.showSetup(w, r, e, status, msg)
	}
	a, acct, ok := g.beginAccountAttempt(w, r, EventEnrollment, e.user, "", pg)
	if !ok {
		return
	}
	if e.pending != nil && acct.HasSecondFactor() {
		g.releaseAttempt(a)
		g.problem(w, r, problem{status: http.StatusUnauthorized, code: codeUnauthenticated, msg: "Please sign in again."}, page{Title: "Sign in again"})
		return
	}
	now := g.cfg.Clock.Now()
	if (e.session != nil || e.passwordDue) && f.get("code") == "" {
		// A signed-in user (or one stepping up from a password-only
		// session) gives the password before any secret is shown, so a
		// borrowed session cannot take over the second factor.
		g.postSetupPassword(w, r, e, acct, a, f.get("password"), now)
		return
	}
	enr, ok := acct.PendingAt(now)
	switch {
	case e.passwordDue, e.session != nil && (!ok || enr.Session != e.session.ID):
		// Only the session that gave the password confirms its secret.
		g.releaseAttempt(a)
		g.askPassword(w, r, e, acct, http.StatusForbidden, "Enter your password first.")
		return
	case e.session == nil && (!ok || enr.Session != e.pending.ID):
		g.releaseAttempt(a)
		refuse(http.StatusBadRequest, codeSetupExpired, "This key has expired. Scan the new one.")
		return
	}
	code, _ := normalizeTOTPCode(f.get("code"))
	step, match := matchTOTP(enr.Secret, code, now, g.cfg.Drift)
	if !match {
		note := g.failAttempt(r, a, e.user)
		g.audit(r, EventEnrollment, OutcomeFailure, e.user)
		refuse(http.StatusBadRequest, codeInvalidCode, "That code is not right."+note+g.serverTime())
		return
	}
	codes, hashes, busy, err := g.newBackupCodeSet(r)
	if busy {
		g.busy(w, r, a, EventEnrollment, e.user)
		return
	}
	if err == nil {
		err = account.ConfirmEnrollment(g.cfg.Store, e.user, enr.Secret, step, hashes, now)
	}
	g.releaseAttempt(a)
	if errors.Is(err, account.ErrNoEnrollment) {
		refuse(http.StatusBadRequest, codeSetupExpired, "This key has expired. Scan the new one.")
		return
	}
	if err != nil {
		g.internalError(w, r, "confirm enrollment", err)
		return
	}
	g.audit(r, EventEnrollment, OutcomeOK, e.user)
	if e.pending == nil {
		reason := codesEnrolled // turned on from the account page
		if acct.TOTPSecret != "" {
			reason = codesMoved
		}
		s := *e.session
		if s.Level < LevelTwoFactor {
			// Turned on from a password-only session: it has now proven
			// a second factor.
			s = Session{User: e.user, ID: s.ID, Generation: acct.Generation}
			if err := g.startSession(w, r, s, FactorEnrollment, g.cfg.Clock.Now()); err != nil {
				g.internalError(w, r, "set session cookie", err)
				return
			}
		}
		g.showCodesOnce(w, r, s, reason, codes, e.redirect)
		return
	}
	// The session's id is chosen here, so the codes can be bound to it.
	id, err := newSessionID()
	if err != nil {
		g.internalError(w, r, "start session", err)
		return
	}
	// The session starts now, not when the request came in: making the
	// backup codes takes a while, and a short idle_timeout would count it.
	s := Session{User: e.user, ID: id, Generation: acct.Generation}
	if !g.completeSignIn(w, r, s, g.cfg.Clock.Now(), FactorEnrollment) {
		return
	}
	g.showCodesOnce(w, r, s, codesEnrolled, codes, e.redirect)
}

// postSetupPassword is the first step for a signed-in user, or one
// stepping up from a password-only session: the password, within the
// attempt a, then a new secret bound to this session or pending sign-in
// (SPEC §4 rule 21). API clients get the secret; browsers go on to the setup page,
// which shows it.
func (g *Gateway) postSetupPassword(w http.ResponseWriter, r *http.Request, e enrollee, acct account.Account, a account.Attempt, password string, now time.Time) {
	match, answered := g.passwordMatches(w, r, a, EventEnrollment, e.user, password)
	if answered {
		return
	}
	if !match {
		note := g.failAttempt(r, a, e.user)
		g.audit(r, EventEnrollment, OutcomeFailure, e.user)
		g.askPassword(w, r, e, acct, http.StatusUnauthorized, "Wrong password."+note)
		return
	}
	g.releaseAttempt(a)
	if e.passwordDue {
		// The same pending sign-in, now past its password.
		p := *e.pending
		p.Stage = stageEnroll
		if err := g.setPendingCookie(w, r, p); err != nil {
			g.internalError(w, r, "set pending cookie", err)
			return
		}
		e.pending, e.passwordDue = &p, false
	}
	if _, err := account.EnrollmentFor(g.cfg.Store, e.user, e.binding(), now, newEnrollment(now)); err != nil {
		g.internalError(w, r, "start enrollment", err)
		return
	}
	if wantsJSON(r) {
		g.showSetup(w, r, e, http.StatusOK, "")
		return
	}
	http.Redirect(w, r, g.pageURL(pathSetup), http.StatusSeeOther)
}
