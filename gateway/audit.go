package gateway

import (
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// audit writes the one log line each security event gets and tells the
// Events hook. It takes user, client IP and outcome only: never a password,
// code or secret.
func (g *Gateway) audit(r *http.Request, kind EventKind, outcome Outcome, user string, fields ...zap.Field) {
	ip := g.cfg.ClientIP(r)
	level := zapcore.InfoLevel
	if outcome != OutcomeOK {
		level = zapcore.WarnLevel
	}
	if len(user) > 128 {
		user = user[:128]
	}
	if ce := g.cfg.Logger.Check(level, "totp_auth "+string(kind)); ce != nil {
		ce.Write(append([]zap.Field{
			zap.String("event", string(kind)),
			zap.String("outcome", string(outcome)),
			zap.String("user", user),
			zap.String("client_ip", ip),
		}, fields...)...)
	}
	if g.cfg.Events != nil {
		g.cfg.Events(Event{Kind: kind, Outcome: outcome, User: user, IP: ip})
	}
}

func lockField(key string) zap.Field      { return zap.String("counter", key) }
func methodField(method string) zap.Field { return zap.String("method", method) }
