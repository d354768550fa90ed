package gateway

import (
	"errors"

	"net/http"
	"strconv"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"go.uber.org/zap"
)

// Attempt bookkeeping (SPEC §4 rules 5, 13): a slot in the user's and the
// client's failure counters is taken before any password or code is
// evaluated, and given back or turned into a failure afterwards.

// userLimits are the failure counters an attempt for user from r counts in.
func (g *Gateway) userLimits(r *http.Request, user string) []account.Limit {
	return []account.Limit{
		{Key: account.UserCounter.Key(user), Max: g.cfg.MaxFailures},
		{Key: ClientKey(g.cfg.ClientIP(r)), Max: g.cfg.MaxFailuresPerIP},
	}
}

// beginAttempt takes a slot in the user's and the client's counters before
// anything is evaluated; when a counter is locked it answers 429.
func (g *Gateway) beginAttempt(w http.ResponseWriter, r *http.Request, kind EventKind, user, pageName string, p page) (account.Attempt, bool) {
	a, lock, err := account.TakeAttempt(g.cfg.Store, g.cfg.Clock.Now(), g.cfg.Lockout, g.userLimits(r, user))
	if err != nil {
		g.internalError(w, r, "take attempt", err)
		return account.Attempt{}, false
	}
	if lock != nil {
		logged, suppressed := g.lockLines.allow(lock.Key, g.cfg.Clock.Now())
		g.auditLine(r, logged, kind, OutcomeLocked, user, lockField(lock.Key), zap.Int("refusals_not_logged", suppressed))
		secs := max(1, int((lock.RetryAfter+time.Second-1)/time.Second))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		if wantsJSON(r) {
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": codeLocked, "retry_after": secs})
			return account.Attempt{}, false
		}
		p.Title = "Too many attempts"
		if pageName == "" {
			pageName = "message"
		}
		p.Error = lockedMessage(time.Duration(secs) * time.Second)
		if p.Continue == "" {
			p.Continue = g.pageURL(pathLogin)
		}
		g.render(w, r, http.StatusTooManyRequests, pageName, p)
		return account.Attempt{}, false
	}
	return a, true
}

// beginAccountAttempt is beginAttempt followed by reading the user's
// account, which every code check needs; on a read error it gives the slot
// back and answers 500.
func (g *Gateway) beginAccountAttempt(w http.ResponseWriter, r *http.Request, kind EventKind, user, pageName string, p page) (account.Attempt, account.Account, bool) {
	a, ok := g.beginAttempt(w, r, kind, user, pageName, p)
	if !ok {
		return account.Attempt{}, account.Account{}, false
	}
	acct, err := g.cfg.Store.Account(user)
	if err != nil {
		g.releaseAttempt(a)
		g.internalError(w, r, "read account", err)
		return account.Attempt{}, account.Account{}, false
	}
	return a, acct, true
}

// failAttempt records a failed attempt and logs any lock it triggers. It
// returns what a person should read after the failure's own message: how
// many attempts are left when they are few, or that sign-in is now locked.
func (g *Gateway) failAttempt(r *http.Request, a account.Attempt, user string) string {
	locks, err := account.FailAttempt(g.cfg.Store, a, g.cfg.Clock.Now(), g.cfg.Lockout)
	if err != nil {
		g.cfg.Logger.Error("totp_auth: record failed attempt: " + err.Error())
		return ""
	}
	for _, l := range locks {
		g.audit(r, EventLockout, OutcomeLocked, user, lockField(l.Key))
	}
	return g.attemptsLeft(a, locks)
}

func (g *Gateway) releaseAttempt(a account.Attempt) {
	if err := account.ReleaseAttempt(g.cfg.Store, a); err != nil {
		g.cfg.Logger.Error("totp_auth: release attempt: " + err.Error())
	}
}

// busy answers a request whose hashing could not be queued, after giving
// its attempt slot back: it was never evaluated.
func (g *Gateway) busy(w http.ResponseWriter, r *http.Request, a account.Attempt, kind EventKind, user string) {
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
func (g *Gateway) refuseBusy(w http.ResponseWriter, r *http.Request, kind EventKind, user string) {
	g.audit(r, kind, OutcomeBusy, user)
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
	g.problem(w, r, problem{status: http.StatusServiceUnavailable, code: codeBusy, msg: "The server is busy checking other sign-ins. Try again in a moment."}, page{Title: "Busy"})
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
		if known {
			g.noteHash(hash)
		}
	}
	if !known {
		hash = g.decoyHash()
	}
	var match bool
	err := g.hash(r, func() { match = comparePassword(hash, password) })
	return match && known, err
}

// passwordMatches checks password within the attempt a. When the check
// cannot be made (hashing queue full, store error) it answers the request
// itself and reports answered.
func (g *Gateway) passwordMatches(w http.ResponseWriter, r *http.Request, a account.Attempt, kind EventKind, user, password string) (match, answered bool) {
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
// if recovering is not nil, spends a backup code for the session it
// describes, which then carries the generation that session starts with
// (see Account.Recover). Only input shaped like a backup code is compared
// against the backup hashes.
func (g *Gateway) checkSecondFactor(r *http.Request, acct account.Account, input string, recovering *Session) (usedBackup, ok bool, err error) {
	if code, isTOTP := normalizeTOTPCode(input); isTOTP {
		if acct.TOTPSecret == "" {
			return false, false, nil
		}
		step, match := matchTOTP(acct.TOTPSecret, code, g.cfg.Clock.Now(), g.cfg.Drift)
		if !match {
			return false, false, nil
		}
		err := account.AcceptStep(g.cfg.Store, acct.Name, step)
		if errors.Is(err, account.ErrStepReused) {
			return false, false, nil
		}
		return false, err == nil, err
	}
	code, isBackup := normalizeBackupCode(input)
	if recovering == nil || !isBackup || len(acct.BackupCodes) == 0 {
		return false, false, nil
	}
	var hash []byte
	var match bool
	if err := g.hash(r, func() { hash, match = matchBackupCode(acct.BackupCodes, code) }); err != nil {
		return false, false, err
	}
	if !match {
		return false, false, nil
	}
	recovering.Generation, err = account.Recover(g.cfg.Store, acct.Name, hash, recovering.ID)
	if errors.Is(err, account.ErrCodeUsed) {
		return false, false, nil
	}
	return true, err == nil, err
}
