package gateway

import (
	"errors"
	"html/template"
	"net/http"
)

// Enrollment of an authenticator app (SPEC §3 flow 3), at first sign-in or
// when a signed-in user moves to a new app.

// enrollee is who may enroll: a pending login waiting for enrollment, or
// a signed-in user moving to a new authenticator.
type enrollee struct {
	user     string
	pending  *PendingLogin
	redirect string
}

func (g *Gateway) requireEnrollee(w http.ResponseWriter, r *http.Request) (enrollee, bool) {
	now := g.cfg.Clock.Now()
	p, _, err := g.pending(r, now)
	if err != nil {
		g.internalError(w, r, "check pending sign-in", err)
		return enrollee{}, false
	}
	if p != nil && p.Stage == stageEnroll {
		return enrollee{user: p.User, pending: p, redirect: g.safeRedirect(r, p.Redirect)}, true
	}
	s, _, ok := g.requireSession(w, r, true)
	if !ok {
		return enrollee{}, false
	}
	return enrollee{user: s.User, redirect: g.cfg.Prefix + "/account"}, true
}

var errEnrollmentExpired = errors.New("enrollment expired")

func (g *Gateway) getSetup(w http.ResponseWriter, r *http.Request) {
	e, ok := g.requireEnrollee(w, r)
	if !ok {
		return
	}
	g.showSetup(w, r, e, http.StatusOK, "")
}

// showSetup answers with the user's pending enrollment (starting one if
// there is none), as JSON or as the setup page showing errMsg.
func (g *Gateway) showSetup(w http.ResponseWriter, r *http.Request, e enrollee, status int, errMsg string) {
	acct, err := g.cfg.Store.Account(e.user)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if e.pending != nil && acct.TOTPSecret != "" {
		// TOTP was enabled since the password step: enrolling again with a
		// password alone would bypass it.
		g.problem(w, r, http.StatusUnauthorized, "unauthenticated", "Please sign in again.", "", page{Title: "Sign in again"})
		return
	}
	now := g.cfg.Clock.Now()
	enr, err := PendingEnrollment(g.cfg.Store, e.user, now, func() (Enrollment, error) {
		secret, err := newTOTPSecret()
		return Enrollment{Secret: secret, Expires: now.Add(EnrollmentTTL)}, err
	})
	if err != nil {
		g.internalError(w, r, "start enrollment", err)
		return
	}
	uri := otpauthURI(g.issuer(r), e.user, enr.Secret)
	qr, err := qrDataURL(uri)
	if err != nil {
		g.internalError(w, r, "render QR code", err)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, status, map[string]string{"secret": enr.Secret, "otpauth_uri": uri, "qr_png": qr})
		return
	}
	g.render(w, r, status, "setup", page{
		Title: "Set up two-factor authentication", User: e.user, QR: template.URL(qr), Secret: enr.Secret,
		Expires: enr.Expires.UTC().Format("15:04 UTC"), NeedPassword: acct.TOTPSecret != "", Error: errMsg,
	})
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
	pg := page{Title: "Set up two-factor authentication", Continue: g.cfg.Prefix + "/setup"}
	// refuse answers API clients with the error code and shows browsers
	// the setup form again, with the message.
	refuse := func(status int, code, msg string) {
		if wantsJSON(r) {
			jsonError(w, status, code)
			return
		}
		g.showSetup(w, r, e, status, msg)
	}
	a, acct, ok := g.beginAccountAttempt(w, r, "enrollment", e.user, "", pg)
	if !ok {
		return
	}
	if acct.TOTPSecret != "" {
		if e.pending != nil {
			g.releaseAttempt(a)
			g.problem(w, r, http.StatusUnauthorized, "unauthenticated", "Please sign in again.", "", page{Title: "Sign in again"})
			return
		}
		// Replacing a working authenticator needs the password too, so a
		// borrowed session cannot take over the second factor.
		match, answered := g.passwordMatches(w, r, a, "enrollment", e.user, f.get("password"))
		if answered {
			return
		}
		if !match {
			g.failAttempt(r, a, e.user)
			g.audit(r, "enrollment", "failure", e.user)
			refuse(http.StatusUnauthorized, "invalid_credentials", "Wrong password.")
			return
		}
	}
	now := g.cfg.Clock.Now()
	enr, err := PendingEnrollment(g.cfg.Store, e.user, now, func() (Enrollment, error) { return Enrollment{}, errEnrollmentExpired })
	if errors.Is(err, errEnrollmentExpired) {
		g.releaseAttempt(a)
		refuse(http.StatusBadRequest, "setup_expired", "This key has expired. Scan the new one.")
		return
	}
	if err != nil {
		g.releaseAttempt(a)
		g.internalError(w, r, "read enrollment", err)
		return
	}
	code, _ := normalizeTOTPCode(f.get("code"))
	step, match := matchTOTP(enr.Secret, code, now, g.cfg.Drift)
	if !match {
		g.failAttempt(r, a, e.user)
		g.audit(r, "enrollment", "failure", e.user)
		refuse(http.StatusBadRequest, "invalid_code", "That code is not right. Enter the current code your app shows for this key.")
		return
	}
	var codes []string
	var hashes [][]byte
	if err := g.hash(r, func() { codes, hashes, err = newBackupCodes(g.cfg.BackupCodeCost) }); err != nil {
		g.busy(w, r, a, "enrollment", e.user)
		return
	}
	if err == nil {
		err = ConfirmEnrollment(g.cfg.Store, e.user, enr.Secret, step, hashes, now)
	}
	g.releaseAttempt(a)
	if errors.Is(err, ErrNoEnrollment) {
		refuse(http.StatusBadRequest, "setup_expired", "This key has expired. Scan the new one.")
		return
	}
	if err != nil {
		g.internalError(w, r, "confirm enrollment", err)
		return
	}
	g.audit(r, "enrollment", "ok", e.user)
	// The session starts now, not when the request came in: making the
	// backup codes takes a while, and a short idle_timeout would count it.
	if e.pending != nil && !g.completeSignIn(w, r, Session{User: e.user, Generation: acct.Generation}, g.cfg.Clock.Now(), FactorEnrollment) {
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "backup_codes": codes})
		return
	}
	g.render(w, r, http.StatusOK, "codes", page{Title: "Two-factor authentication is on", Codes: codes, Continue: e.redirect})
}
