package gateway

import (
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// audit writes the one log line each security event gets and tells the
// Events hook. It takes user, client IP and outcome only: never a password,
// code or secret.
func (g *Gateway) audit(r *http.Request, kind EventKind, outcome Outcome, user string, fields ...zap.Field) {
	g.auditLine(r, true, kind, outcome, user, fields...)
}

// auditLine is audit with the log line left out unless logged; the
// Events hook always hears of the event.
func (g *Gateway) auditLine(r *http.Request, logged bool, kind EventKind, outcome Outcome, user string, fields ...zap.Field) {
	g.auditEvent(r, logged, Event{Kind: kind, Outcome: outcome, User: user}, fields...)
}

// auditSignIn logs a completed sign-in and tells the Events hook which
// factor completed it, so metrics count sign-ins by factor.
func (g *Gateway) auditSignIn(r *http.Request, user string, factor Factor) {
	g.auditEvent(r, true, Event{Kind: EventSignIn, Outcome: OutcomeOK, User: user, Factor: factor}, methodField(factor.String()))
}

func (g *Gateway) auditEvent(r *http.Request, logged bool, e Event, fields ...zap.Field) {
	kind, outcome, user := e.Kind, e.Outcome, e.User
	ip := g.cfg.ClientIP(r)
	level := zapcore.InfoLevel
	if outcome != OutcomeOK {
		level = zapcore.WarnLevel
	}
	if len(user) > 128 {
		user = user[:128]
	}
	// An event that is counted only need not ask the logger.
	if logged {
		if ce := g.cfg.Logger.Check(level, "totp_auth "+string(kind)); ce != nil {
			ce.Write(append([]zap.Field{
				zap.String("event", string(kind)),
				zap.String("outcome", string(outcome)),
				zap.String("user", user),
				zap.String("client_ip", ip),
			}, fields...)...)
		}
	}
	if g.cfg.Events != nil {
		g.cfg.Events(Event{Kind: kind, Outcome: outcome, User: user, IP: ip, Factor: e.Factor})
	}
}

func lockField(key string) zap.Field      { return zap.String("counter", key) }
func methodField(method string) zap.Field { return zap.String("method", method) }

// lockLines lets through at most one log line per counter per second for
// attempts refused by a lock (SPEC §4 rule 25): a flood against a lock
// would otherwise fill the log. The next line says how many it stood for.
type lockLines struct {
	mu   sync.Mutex
	last map[string]lockLine
}

type lockLine struct {
	at         time.Time
	suppressed int
}

// lockLinesSize bounds the counters remembered; past it they start over,
// which at worst lets one more line per counter through.
const lockLinesSize = 10000

// allow reports whether a refusal under key at now gets a log line, and
// how many refusals under key went unlogged before it.
func (l *lockLines) allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, seen := l.last[key]
	if seen && now.Sub(e.at) < time.Second && !now.Before(e.at) {
		e.suppressed++
		l.last[key] = e
		return false, 0
	}
	if l.last == nil || len(l.last) >= lockLinesSize {
		l.last = make(map[string]lockLine)
	}
	l.last[key] = lockLine{at: now}
	return true, e.suppressed
}
