package gateway

import (
	"fmt"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Messages for people (SPEC §10): durations in words, the server's time
// beside a wrong code, and how many attempts are left before a lock.

// inWords says d as a person would, rounded up to the unit it is said in:
// "40 seconds", "1 minute", "15 minutes", "2 hours".
func inWords(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d <= time.Minute-time.Second:
		return plural(max(1, int64((d+time.Second-1)/time.Second)), "second")
	case d <= 90*time.Minute:
		return plural(int64((d+time.Minute-1)/time.Minute), "minute")
	default:
		return plural(int64((d+time.Hour-1)/time.Hour), "hour")
	}
}

// lockedMessage is what a person sees while a counter refuses them.
func lockedMessage(retry time.Duration) string {
	return "Too many failed attempts. Try again in " + inWords(retry) +
		". If you cannot wait, an administrator can unlock you."
}

// serverTime is said beside a wrong code, so that a phone whose clock is
// off is easy to spot.
func (g *Gateway) serverTime() string {
	return " The time on this server is " + g.cfg.Clock.Now().UTC().Format("15:04:05") +
		" UTC: if your phone's clock differs by more than half a minute, set it to the network time."
}

// attemptsLeft returns what a failed attempt a leaves: how many attempts
// are left when they are few, or that the failure locked sign-in.
func (g *Gateway) attemptsLeft(a account.Attempt, locks []account.Lock) string {
	if len(locks) > 0 {
		return " " + lockedMessage(g.cfg.Lockout)
	}
	left := -1
	for i, l := range a.Limits {
		if i < len(a.Failures) {
			if n := l.Max - a.Failures[i] - 1; left < 0 || n < left {
				left = n
			}
		}
	}
	switch {
	case left == 1:
		return fmt.Sprintf(" 1 attempt left before sign-in is locked for %s.", inWords(g.cfg.Lockout))
	case left == 2:
		return fmt.Sprintf(" 2 attempts left before sign-in is locked for %s.", inWords(g.cfg.Lockout))
	}
	return ""
}
