package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// serveAuth routes the built-in pages. sub is the path below the prefix.
func (g *Gateway) serveAuth(w http.ResponseWriter, r *http.Request, sub string) {
	type route struct {
		get, post func(http.ResponseWriter, *http.Request)
	}
	routes := map[string]route{
		"":             {get: g.getIndex},
		"login":        {get: g.getLogin, post: g.postLogin},
		"2fa":          {get: g.getSecondFactor, post: g.postSecondFactor},
		"setup":        {get: g.getSetup, post: g.postSetup},
		"backup-codes": {get: g.getBackupCodes, post: g.postBackupCodes},
		"account":      {get: g.getAccount},
		"whoami":       {get: g.getWhoami},
		"disable":      {post: g.postDisable},
		"logout":       {post: g.postLogout},
		"logout-all":   {post: g.postLogoutAll},
	}
	rt, ok := routes[sub]
	if !ok {
		g.problem(w, r, http.StatusNotFound, "not_found", "There is no such page.", "", page{Title: "Not found"})
		return
	}
	switch {
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && rt.get != nil:
		rt.get(w, r)
	case r.Method == http.MethodPost && rt.post != nil:
		rt.post(w, r)
	default:
		var allow []string
		if rt.get != nil {
			allow = append(allow, "GET", "HEAD")
		}
		if rt.post != nil {
			allow = append(allow, "POST")
		}
		w.Header().Set("Allow", fmt.Sprint(allow))
		jsonError(w, http.StatusMethodNotAllowed, "method_not_allowed")
	}
}

// problem answers a refused request: JSON {"error": code} for API clients,
// the named page with msg shown for browsers (a plain message page when
// name is empty).
func (g *Gateway) problem(w http.ResponseWriter, r *http.Request, status int, code, msg, name string, p page) {
	if wantsJSON(r) {
		jsonError(w, status, code)
		return
	}
	if name == "" {
		name = "message"
		if p.Continue == "" {
			p.Continue = g.cfg.Prefix + "/login"
		}
	}
	if p.Title == "" {
		p.Title = "Something went wrong"
	}
	p.Error = msg
	g.render(w, r, status, name, p)
}

// readPost decodes the body of a state-changing request and checks its CSRF
// protection; on failure it has answered the request.
func (g *Gateway) readPost(w http.ResponseWriter, r *http.Request) (form, bool) {
	f, err := readForm(w, r)
	if err != nil {
		var re *requestError
		if !errors.As(err, &re) {
			re = &requestError{http.StatusBadRequest, "bad_request", "malformed request"}
		}
		g.problem(w, r, re.status, re.code, "The request could not be read: "+re.msg+".", "", page{Title: "Bad request"})
		return form{}, false
	}
	if !g.checkCSRF(r, f) {
		g.audit(r, "csrf", "refused", "")
		g.problem(w, r, http.StatusForbidden, "csrf", "This form has expired or came from another site. Reload the page and try again.", "", page{Title: "Form expired"})
		return form{}, false
	}
	return f, true
}

// seeOther ends a browser form post with a redirect; API clients get body.
func (g *Gateway) seeOther(w http.ResponseWriter, r *http.Request, to string, body any) {
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, body)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (g *Gateway) loginURL(redirect string) string {
	return g.cfg.Prefix + "/login?redirect=" + url.QueryEscape(SafeRedirect(redirect))
}

// requireSession returns the signed-in user's session, or answers 401
// (API) or a redirect to the login page (browser). Unless allowRecovery,
// a user who must regenerate backup codes is sent there instead.
func (g *Gateway) requireSession(w http.ResponseWriter, r *http.Request, allowRecovery bool) (*Session, SessionState, bool) {
	s, st, err := g.session(r, g.cfg.Clock.Now())
	switch {
	case err != nil:
		g.internalError(w, r, "check session", err)
		return nil, st, false
	case s == nil:
		if wantsJSON(r) || r.Method != http.MethodGet {
			g.problem(w, r, http.StatusUnauthorized, "unauthenticated", "You are not signed in.", "", page{Title: "Signed out"})
		} else {
			http.Redirect(w, r, g.loginURL(r.URL.RequestURI()), http.StatusSeeOther)
		}
		return nil, st, false
	case st.MustRegenerate && !allowRecovery:
		g.requireRegeneration(w, r)
		return nil, st, false
	}
	return s, st, true
}

// requirePending returns the pending login at stage, or answers as
// requireSession does without one.
func (g *Gateway) requirePending(w http.ResponseWriter, r *http.Request, stage pendingStage) (PendingLogin, bool) {
	p, ok := g.readPending(r, g.cfg.Clock.Now())
	if ok && p.Stage == stage {
		return p, true
	}
	if wantsJSON(r) || r.Method != http.MethodGet {
		g.problem(w, r, http.StatusUnauthorized, "unauthenticated", "Your sign-in has expired. Please sign in again.", "", page{Title: "Sign in again"})
	} else {
		http.Redirect(w, r, g.loginURL("/"), http.StatusSeeOther)
	}
	return PendingLogin{}, false
}

// startSession signs user in and ends any pending login.
func (g *Gateway) startSession(w http.ResponseWriter, r *http.Request, user string, generation uint64, now time.Time) error {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	g.clearCookie(w, r, g.pendingCookieName())
	return g.setSessionCookie(w, r, Session{User: user, ID: binary.BigEndian.Uint64(id[:]), Generation: generation, Issued: now, LastSeen: now})
}

// userLimits are the failure counters an attempt for user from r counts in.
func (g *Gateway) userLimits(r *http.Request, user string) []Limit {
	return []Limit{
		{Key: "user:" + user, Max: g.cfg.MaxFailures},
		{Key: "ip:" + g.cfg.ClientIP(r), Max: g.cfg.MaxFailuresPerIP},
	}
}

// beginAttempt takes a slot in the user's and the client's counters before
// anything is evaluated; when a counter is locked it answers 429.
func (g *Gateway) beginAttempt(w http.ResponseWriter, r *http.Request, kind, user, pageName string, p page) (Attempt, bool) {
	a, lock, err := g.cfg.Store.TakeAttempt(g.cfg.Clock.Now(), g.cfg.Lockout, g.userLimits(r, user))
	if err != nil {
		g.internalError(w, r, "take attempt", err)
		return Attempt{}, false
	}
	if lock != nil {
		g.audit(r, kind, "locked", user)
		secs := max(1, int((lock.RetryAfter+time.Second-1)/time.Second))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		if wantsJSON(r) {
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": "locked", "retry_after": secs})
			return Attempt{}, false
		}
		p.Title = "Too many attempts"
		if pageName == "" {
			pageName = "message"
		}
		p.Error = fmt.Sprintf("Too many failed attempts. Try again in %s.", (time.Duration(secs) * time.Second).String())
		if p.Continue == "" {
			p.Continue = g.cfg.Prefix + "/login"
		}
		g.render(w, r, http.StatusTooManyRequests, pageName, p)
		return Attempt{}, false
	}
	return a, true
}

// beginAccountAttempt is beginAttempt followed by reading the user's
// account, which every code check needs; on a read error it gives the slot
// back and answers 500.
func (g *Gateway) beginAccountAttempt(w http.ResponseWriter, r *http.Request, kind, user, pageName string, p page) (Attempt, Account, bool) {
	a, ok := g.beginAttempt(w, r, kind, user, pageName, p)
	if !ok {
		return Attempt{}, Account{}, false
	}
	acct, err := g.cfg.Store.Account(user)
	if err != nil {
		g.releaseAttempt(a)
		g.internalError(w, r, "read account", err)
		return Attempt{}, Account{}, false
	}
	return a, acct, true
}

// failAttempt records a failed attempt and logs any lock it triggers.
func (g *Gateway) failAttempt(r *http.Request, a Attempt, user string) {
	locks, err := g.cfg.Store.FailAttempt(a, g.cfg.Clock.Now(), g.cfg.Lockout)
	if err != nil {
		g.cfg.Logger.Error("totp_auth: record failed attempt: " + err.Error())
		return
	}
	for _, l := range locks {
		g.audit(r, "lockout", "locked", user, lockField(l.Key))
	}
}

func (g *Gateway) releaseAttempt(a Attempt) {
	if err := g.cfg.Store.ReleaseAttempt(a); err != nil {
		g.cfg.Logger.Error("totp_auth: release attempt: " + err.Error())
	}
}

// busy answers a request whose hashing could not be queued, after giving
// its attempt slot back: it was never evaluated.
func (g *Gateway) busy(w http.ResponseWriter, r *http.Request, a Attempt, kind, user string) {
	g.releaseAttempt(a)
	g.refuseBusy(w, r, kind, user)
}

// maxPaused bounds how many busy refusals are held at once; past it they
// are answered without a pause.
const maxPaused = 4096

// refuseBusy answers 503 with Retry-After. The answer is held for
// BusyPause (on a timer, costing no CPU) so that a client hammering the
// login without honouring Retry-After gets a few answers a second, not
// thousands, and requests with a session keep their share of the CPU.
func (g *Gateway) refuseBusy(w http.ResponseWriter, r *http.Request, kind, user string) {
	g.audit(r, kind, "busy", user)
	if g.cfg.BusyPause > 0 {
		if g.paused.Add(1) <= maxPaused {
			t := time.NewTimer(g.cfg.BusyPause)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
			}
		}
		g.paused.Add(-1)
	}
	w.Header().Set("Retry-After", "1")
	g.problem(w, r, http.StatusServiceUnavailable, "busy", "The server is busy checking other sign-ins. Try again in a moment.", "", page{Title: "Busy"})
}

// checkPassword compares password with user's hash, or with the decoy
// hash when there is no such user, so both cost the same.
func (g *Gateway) checkPassword(r *http.Request, user, password string) (bool, error) {
	hash, known := g.cfg.Users[user]
	if !known {
		acct, err := g.cfg.Store.Account(user)
		if err != nil {
			return false, err
		}
		hash, known = acct.PasswordHash, acct.PasswordHash != nil
	}
	if !known {
		hash = g.decoyHash()
	}
	var match bool
	err := g.hashes.do(r.Context(), func() { match = comparePassword(hash, password) })
	return match && known, err
}

// passwordMatches checks password within the attempt a. When the check
// cannot be made (hashing queue full, store error) it answers the request
// itself and reports answered.
func (g *Gateway) passwordMatches(w http.ResponseWriter, r *http.Request, a Attempt, kind, user, password string) (match, answered bool) {
	match, err := g.checkPassword(r, user, password)
	if errors.Is(err, ErrBusy) {
		g.busy(w, r, a, kind, user)
		return false, true
	}
	if err != nil {
		g.releaseAttempt(a)
		g.internalError(w, r, "check password", err)
		return false, true
	}
	return match, false
}

// checkSecondFactor verifies a TOTP code (at most once per time step) or,
// if allowBackup, spends a backup code. Only input shaped like a backup
// code is compared against the backup hashes.
func (g *Gateway) checkSecondFactor(r *http.Request, acct Account, input string, allowBackup bool) (usedBackup, ok bool, err error) {
	if code, isTOTP := normalizeTOTPCode(input); isTOTP {
		if acct.TOTPSecret == "" {
			return false, false, nil
		}
		step, match := matchTOTP(acct.TOTPSecret, code, g.cfg.Clock.Now(), g.cfg.Drift)
		if !match {
			return false, false, nil
		}
		err := g.cfg.Store.AcceptStep(acct.Name, step)
		if errors.Is(err, ErrStepReused) {
			return false, false, nil
		}
		return false, err == nil, err
	}
	code, isBackup := normalizeBackupCode(input)
	if !allowBackup || !isBackup || len(acct.BackupCodes) == 0 {
		return false, false, nil
	}
	var hash []byte
	var match bool
	if err := g.hashes.do(r.Context(), func() { hash, match = matchBackupCode(acct.BackupCodes, code) }); err != nil {
		return false, false, err
	}
	if !match {
		return false, false, nil
	}
	err = g.cfg.Store.UseBackupCode(acct.Name, hash)
	if errors.Is(err, ErrCodeUsed) {
		return false, false, nil
	}
	return true, err == nil, err
}

// --- index, login ---

func (g *Gateway) getIndex(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, g.cfg.Prefix+"/account", http.StatusSeeOther)
}

func (g *Gateway) getLogin(w http.ResponseWriter, r *http.Request) {
	redirect := SafeRedirect(r.URL.Query().Get("redirect"))
	if s, _, err := g.session(r, g.cfg.Clock.Now()); err == nil && s != nil && !wantsJSON(r) {
		http.Redirect(w, r, redirect, http.StatusSeeOther)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "login_required", "redirect": redirect})
		return
	}
	g.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Redirect: redirect})
}

func (g *Gateway) postLogin(w http.ResponseWriter, r *http.Request) {
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	user := CanonicalUser(f.get("username"))
	password := f.get("password")
	redirect := SafeRedirect(f.get("redirect"))
	p := page{Title: "Sign in", Redirect: redirect, User: user}
	if user == "" || password == "" || len(user) > 128 || len(password) > 1024 {
		g.problem(w, r, http.StatusBadRequest, "bad_request", "Enter a user name and a password.", "login", p)
		return
	}
	if g.hashes.saturated() {
		g.refuseBusy(w, r, "password", user)
		return
	}
	a, ok := g.beginAttempt(w, r, "password", user, "login", p)
	if !ok {
		return
	}
	match, answered := g.passwordMatches(w, r, a, "password", user, password)
	if answered {
		return
	}
	if !match {
		g.failAttempt(r, a, user)
		g.audit(r, "password", "failure", user)
		g.problem(w, r, http.StatusUnauthorized, "invalid_credentials", "Wrong user name or password.", "login", p)
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
		if err := g.setPendingCookie(w, r, PendingLogin{User: user, Stage: stage, Issued: now, Redirect: redirect}); err != nil {
			g.internalError(w, r, "set pending cookie", err)
			return
		}
		g.audit(r, "password", "ok", user)
		g.seeOther(w, r, g.cfg.Prefix+"/"+page, map[string]string{"status": status, "redirect": redirect})
	}
	switch {
	case acct.TOTPSecret != "":
		next(stageSecondFactor, "2fa_required", "2fa")
	case !g.cfg.Optional2FA:
		next(stageEnroll, "enroll_required", "setup")
	default:
		g.completeSignIn(w, r, user, acct.Generation, now, "password")
		g.seeOther(w, r, redirect, map[string]string{"status": "ok", "redirect": redirect})
	}
}

// completeSignIn starts the session, resets the user's failure counter and
// logs the sign-in. Callers answer the request afterwards.
func (g *Gateway) completeSignIn(w http.ResponseWriter, r *http.Request, user string, generation uint64, now time.Time, method string) bool {
	if err := g.cfg.Store.ResetFailures("user:" + user); err != nil {
		g.cfg.Logger.Error("totp_auth: reset failures: " + err.Error())
	}
	if err := g.startSession(w, r, user, generation, now); err != nil {
		g.internalError(w, r, "set session cookie", err)
		return false
	}
	g.audit(r, "sign_in", "ok", user, methodField(method))
	return true
}

// --- second factor ---

func (g *Gateway) getSecondFactor(w http.ResponseWriter, r *http.Request) {
	p, ok := g.requirePending(w, r, stageSecondFactor)
	if !ok {
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "2fa_required", "redirect": p.Redirect})
		return
	}
	g.render(w, r, http.StatusOK, "2fa", page{Title: "Two-factor authentication", User: p.User})
}

func (g *Gateway) postSecondFactor(w http.ResponseWriter, r *http.Request) {
	p, ok := g.requirePending(w, r, stageSecondFactor)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	pg := page{Title: "Two-factor authentication", User: p.User}
	a, acct, ok := g.beginAccountAttempt(w, r, "second_factor", p.User, "2fa", pg)
	if !ok {
		return
	}
	usedBackup, ok, err := g.checkSecondFactor(r, acct, f.get("code"), true)
	switch {
	case errors.Is(err, ErrBusy):
		g.busy(w, r, a, "second_factor", p.User)
		return
	case err != nil:
		g.releaseAttempt(a)
		g.internalError(w, r, "check code", err)
		return
	case !ok:
		g.failAttempt(r, a, p.User)
		g.audit(r, "second_factor", "failure", p.User)
		g.problem(w, r, http.StatusUnauthorized, "invalid_code", "That code is not right. Check your app's clock and try the current code.", "2fa", pg)
		return
	}
	g.releaseAttempt(a)
	method := "totp"
	if usedBackup {
		method = "backup_code"
		g.audit(r, "backup_code", "ok", p.User)
	}
	if !g.completeSignIn(w, r, p.User, acct.Generation, g.cfg.Clock.Now(), method) {
		return
	}
	if usedBackup {
		g.seeOther(w, r, g.cfg.Prefix+"/backup-codes?redirect="+url.QueryEscape(p.Redirect), map[string]string{"status": "regenerate_backup_codes", "redirect": p.Redirect})
		return
	}
	g.seeOther(w, r, p.Redirect, map[string]string{"status": "ok", "redirect": p.Redirect})
}

// --- enrollment ---

// enrollee is who may enroll: a pending login waiting for enrollment, or
// a signed-in user moving to a new authenticator.
type enrollee struct {
	user     string
	pending  *PendingLogin
	redirect string
}

func (g *Gateway) requireEnrollee(w http.ResponseWriter, r *http.Request) (enrollee, bool) {
	now := g.cfg.Clock.Now()
	if p, ok := g.readPending(r, now); ok && p.Stage == stageEnroll {
		return enrollee{user: p.User, pending: &p, redirect: p.Redirect}, true
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
	enr, err := g.cfg.Store.PendingEnrollment(e.user, now, func() (Enrollment, error) {
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
	enr, err := g.cfg.Store.PendingEnrollment(e.user, now, func() (Enrollment, error) { return Enrollment{}, errEnrollmentExpired })
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
	if err := g.hashes.do(r.Context(), func() { codes, hashes, err = newBackupCodes() }); err != nil {
		g.busy(w, r, a, "enrollment", e.user)
		return
	}
	if err == nil {
		err = g.cfg.Store.ConfirmEnrollment(e.user, enr.Secret, step, hashes, now)
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
	if e.pending != nil && !g.completeSignIn(w, r, e.user, acct.Generation, now, "enrollment") {
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "backup_codes": codes})
		return
	}
	g.render(w, r, http.StatusOK, "codes", page{Title: "Two-factor authentication is on", Codes: codes, Continue: e.redirect})
}

// --- backup codes ---

func (g *Gateway) getBackupCodes(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r, true)
	if !ok {
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]any{"user": s.User, "regenerate_required": st.MustRegenerate})
		return
	}
	g.render(w, r, http.StatusOK, "backup", page{Title: "Backup codes", User: s.User, Recovery: st.MustRegenerate,
		Redirect: SafeRedirect(r.URL.Query().Get("redirect"))})
}

func (g *Gateway) postBackupCodes(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r, true)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	pg := page{Title: "Backup codes", User: s.User, Recovery: st.MustRegenerate}
	if !st.TOTPEnabled {
		g.problem(w, r, http.StatusBadRequest, "not_enrolled", "Turn on two-factor authentication first.", "backup", pg)
		return
	}
	a, acct, ok := g.beginAccountAttempt(w, r, "backup_codes_regenerated", s.User, "backup", pg)
	if !ok {
		return
	}
	if !st.MustRegenerate {
		// Outside recovery a fresh set needs a current code: a borrowed
		// session alone must not mint working codes.
		_, match, err := g.checkSecondFactor(r, acct, f.get("code"), false)
		if err != nil {
			g.releaseAttempt(a)
			g.internalError(w, r, "check code", err)
			return
		}
		if !match {
			g.failAttempt(r, a, s.User)
			g.audit(r, "backup_codes_regenerated", "failure", s.User)
			g.problem(w, r, http.StatusUnauthorized, "invalid_code", "That code is not right.", "backup", pg)
			return
		}
	}
	var codes []string
	var hashes [][]byte
	var err error
	if herr := g.hashes.do(r.Context(), func() { codes, hashes, err = newBackupCodes() }); herr != nil {
		g.busy(w, r, a, "backup_codes_regenerated", s.User)
		return
	}
	g.releaseAttempt(a)
	if err == nil {
		err = g.cfg.Store.ReplaceBackupCodes(s.User, hashes)
	}
	if err != nil {
		g.internalError(w, r, "replace backup codes", err)
		return
	}
	g.audit(r, "backup_codes_regenerated", "ok", s.User)
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]any{"backup_codes": codes})
		return
	}
	next := g.cfg.Prefix + "/account"
	if st.MustRegenerate {
		// Recovery interrupted a sign-in: go on to where it was headed.
		next = SafeRedirect(f.get("redirect"))
	}
	g.render(w, r, http.StatusOK, "codes", page{Title: "New backup codes", Codes: codes, Continue: next, Recovery: st.MustRegenerate})
}

// --- account ---

func (g *Gateway) getAccount(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r, false)
	if !ok {
		return
	}
	g.showAccount(w, r, s, st, http.StatusOK, "")
}

// showAccount answers with the account overview, as JSON or as the account
// page showing errMsg.
func (g *Gateway) showAccount(w http.ResponseWriter, r *http.Request, s *Session, st SessionState, status int, errMsg string) {
	acct, err := g.cfg.Store.Account(s.User)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, status, map[string]any{"user": s.User, "two_factor": st.TOTPEnabled, "backup_codes_left": len(acct.BackupCodes)})
		return
	}
	g.render(w, r, status, "account", page{Title: "Your account", User: s.User, TwoFactor: st.TOTPEnabled, CodesLeft: len(acct.BackupCodes), Error: errMsg})
}

func (g *Gateway) getWhoami(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r, false)
	if !ok {
		return
	}
	expires := s.Issued.Add(g.cfg.SessionTTL)
	if idle := s.LastSeen.Add(g.cfg.IdleTimeout); idle.Before(expires) {
		expires = idle
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": s.User, "two_factor": st.TOTPEnabled, "expires": expires.UTC().Format(time.RFC3339)})
}

func (g *Gateway) postDisable(w http.ResponseWriter, r *http.Request) {
	s, st, ok := g.requireSession(w, r, false)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	pg := page{Title: "Your account", User: s.User, TwoFactor: st.TOTPEnabled, Continue: g.cfg.Prefix + "/account"}
	if !st.TOTPEnabled {
		g.problem(w, r, http.StatusBadRequest, "not_enrolled", "Two-factor authentication is already off.", "", pg)
		return
	}
	a, acct, ok := g.beginAccountAttempt(w, r, "disable", s.User, "", pg)
	if !ok {
		return
	}
	pwOK, answered := g.passwordMatches(w, r, a, "disable", s.User, f.get("password"))
	if answered {
		return
	}
	_, codeOK, err := g.checkSecondFactor(r, acct, f.get("code"), false)
	if err != nil {
		g.releaseAttempt(a)
		g.internalError(w, r, "check code", err)
		return
	}
	if !pwOK || !codeOK {
		g.failAttempt(r, a, s.User)
		g.audit(r, "disable", "failure", s.User)
		if wantsJSON(r) {
			jsonError(w, http.StatusUnauthorized, "invalid_credentials")
			return
		}
		g.showAccount(w, r, s, st, http.StatusUnauthorized, "Wrong password or code: two-factor authentication is still on.")
		return
	}
	g.releaseAttempt(a)
	if err := g.cfg.Store.DisableTOTP(s.User); err != nil {
		g.internalError(w, r, "disable two-factor", err)
		return
	}
	g.audit(r, "disable", "ok", s.User)
	if !g.cfg.Optional2FA {
		// Two-factor is required here: every session ends, and the next
		// sign-in enrolls a new authenticator.
		if _, err := g.cfg.Store.BumpGeneration(s.User); err != nil {
			g.internalError(w, r, "end sessions", err)
			return
		}
		g.clearCookie(w, r, g.cfg.CookieName)
		g.seeOther(w, r, g.cfg.Prefix+"/login", map[string]string{"status": "ok"})
		return
	}
	g.seeOther(w, r, g.cfg.Prefix+"/account", map[string]string{"status": "ok"})
}

// --- logout ---

func (g *Gateway) postLogout(w http.ResponseWriter, r *http.Request) {
	if _, ok := g.readPost(w, r); !ok {
		return
	}
	now := g.cfg.Clock.Now()
	user := ""
	if s, ok := g.readSession(r, now); ok {
		user = s.User
		// End the session on the server too, so a copy of the cookie
		// taken before now is worthless.
		if err := g.cfg.Store.RevokeSession(s.User, s.ID, s.Issued.Add(g.cfg.SessionTTL), now); err != nil {
			g.internalError(w, r, "end session", err)
			return
		}
	} else if p, ok := g.readPending(r, now); ok {
		user = p.User
	}
	g.clearCookie(w, r, g.cfg.CookieName)
	g.clearCookie(w, r, g.pendingCookieName())
	g.audit(r, "logout", "ok", user)
	g.seeOther(w, r, g.cfg.Prefix+"/login", map[string]string{"status": "ok"})
}

func (g *Gateway) postLogoutAll(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r, true)
	if !ok {
		return
	}
	if _, ok := g.readPost(w, r); !ok {
		return
	}
	if _, err := g.cfg.Store.BumpGeneration(s.User); err != nil {
		g.internalError(w, r, "end sessions", err)
		return
	}
	g.clearCookie(w, r, g.cfg.CookieName)
	g.clearCookie(w, r, g.pendingCookieName())
	g.audit(r, "logout_all", "ok", s.User)
	g.seeOther(w, r, g.cfg.Prefix+"/login", map[string]string{"status": "ok"})
}
