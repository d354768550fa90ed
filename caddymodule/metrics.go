package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/operator"
)

// The metrics live as long as the process, not a configuration: Caddy
// gives every configuration a fresh registry, and the same collectors are
// registered in each, so a reload does not reset the counts.
var (
	signIns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "totp_auth",
		Name:      "sign_ins_total",
		Help: "Sign-in steps by outcome: ok counts completed sign-ins; failure counts wrong passwords and codes " +
			"(at the password, second factor and enrollment steps); locked counts attempts refused by a lock; " +
			"busy counts attempts refused because password hashing was saturated.",
	}, []string{"outcome"})
	signInsByFactor = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "totp_auth",
		Name:      "sign_ins_by_factor_total",
		Help: "Completed sign-ins by what completed them: totp, passkey, backup_code, enrollment " +
			"(a first TOTP code) or password (where 2FA is optional).",
	}, []string{"factor"})
	lockouts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "totp_auth",
		Name:      "lockouts_total",
		Help:      "Locks imposed on a user or a client IP for reaching its failure limit.",
	})
	enrollments = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "totp_auth",
		Name:      "enrollments_total",
		Help:      "TOTP enrollments confirmed with a valid code.",
	})
	events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "totp_auth",
		Name:      "events_total",
		Help:      "Every security event totp_auth logs, by kind and outcome.",
	}, []string{"kind", "outcome"})
	appPasswordRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "totp_auth",
		Name:      "app_password_requests_total",
		Help: "Requests with an app password by outcome: ok passed; failure had a wrong, revoked or expired one; " +
			"locked were refused by a lock of the user or the client; out_of_scope were outside the app password's scope; " +
			"forbidden were refused by the access policy.",
	}, []string{"outcome"})
	activeLocks = lockCollector{
		users: prometheus.NewDesc("caddy_totp_auth_locked_users",
			"Users currently locked out for too many failures, across all totp_auth databases.", nil, nil),
		ips: prometheus.NewDesc("caddy_totp_auth_locked_client_ips",
			"Client IPs currently locked out for too many failures, across all totp_auth databases.", nil, nil),
	}
)

// signInOutcomes are the values of sign_ins_total's outcome label, present
// from the start so that dashboards and alerts see zeros, not gaps.
var signInOutcomes = []gateway.Outcome{gateway.OutcomeOK, gateway.OutcomeFailure, gateway.OutcomeLocked, gateway.OutcomeBusy}

// appPasswordOutcomes are the values of app_password_requests_total's
// outcome label, present from the start.
var appPasswordOutcomes = []gateway.Outcome{gateway.OutcomeOK, gateway.OutcomeFailure, gateway.OutcomeLocked,
	gateway.OutcomeOutOfScope, gateway.OutcomeForbidden}

func init() {
	for _, o := range signInOutcomes {
		signIns.WithLabelValues(string(o))
	}
	for _, f := range []gateway.Factor{gateway.FactorPassword, gateway.FactorTOTP, gateway.FactorBackupCode, gateway.FactorEnrollment, gateway.FactorPasskey} {
		signInsByFactor.WithLabelValues(f.String())
	}
	for _, o := range appPasswordOutcomes {
		appPasswordRequests.WithLabelValues(string(o))
	}
}

// registerMetrics registers the collectors in reg once; further handlers
// of the same configuration find them there already.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{signIns, signInsByFactor, lockouts, enrollments, events, appPasswordRequests, activeLocks} {
		if err := reg.Register(c); err != nil {
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				continue
			}
			return err
		}
	}
	return nil
}

// recordEvent counts a gateway event of a handler using d.
func recordEvent(d *database, e gateway.Event) {
	events.WithLabelValues(string(e.Kind), string(e.Outcome)).Inc()
	switch e.Kind {
	case gateway.EventSignIn:
		if e.Outcome == gateway.OutcomeOK {
			signIns.WithLabelValues(string(gateway.OutcomeOK)).Inc()
			if e.Factor != 0 {
				signInsByFactor.WithLabelValues(e.Factor.String()).Inc()
			}
		}
	case gateway.EventPassword, gateway.EventSecondFactor, gateway.EventEnrollment:
		switch e.Outcome {
		case gateway.OutcomeFailure, gateway.OutcomeLocked, gateway.OutcomeBusy:
			signIns.WithLabelValues(string(e.Outcome)).Inc()
		}
		if e.Kind == gateway.EventEnrollment && e.Outcome == gateway.OutcomeOK {
			enrollments.Inc()
		}
	case gateway.EventAppPassword:
		appPasswordRequests.WithLabelValues(string(e.Outcome)).Inc()
	case gateway.EventLockout:
		lockouts.Inc()
		d.invalidateLocks()
	}
}

// lockCollector reports the active locks of every open database when
// scraped. Each database keeps its count until a lock is taken, lifted or
// ends, so a scrape rarely reads the database at all.
type lockCollector struct {
	users, ips *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c lockCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.users
	ch <- c.ips
}

// Collect implements prometheus.Collector.
func (c lockCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	var users, ips int
	for _, d := range openDatabases() {
		u, i, err := d.lockCounts(now)
		if err != nil {
			// A database closed by a reload while being scraped; the
			// next scrape no longer sees it.
			d.logger.Debug("counting active locks: " + err.Error())
			continue
		}
		users += u
		ips += i
	}
	ch <- prometheus.MustNewConstMetric(c.users, prometheus.GaugeValue, float64(users))
	ch <- prometheus.MustNewConstMetric(c.ips, prometheus.GaugeValue, float64(ips))
}

// lockCache keeps the number of active locks between scrapes of the
// metrics. It is exact: every lock and unlock in this process invalidates
// it, and it expires when the first lock it counted ends.
type lockCache struct {
	mu         sync.Mutex
	generation uint64 // raised by every invalidation
	valid      bool
	expires    time.Time
	users, ips int
}

// lockCacheTTL bounds how long a count is reused even so.
const lockCacheTTL = time.Minute

// invalidateLocks is called after a lock is taken or lifted.
func (d *database) invalidateLocks() {
	d.locks.mu.Lock()
	defer d.locks.mu.Unlock()
	d.locks.generation++
	d.locks.valid = false
}

// lockCounts returns how many users and client IPs are locked at now.
func (d *database) lockCounts(now time.Time) (users, ips int, err error) {
	c := &d.locks
	c.mu.Lock()
	if c.valid && now.Before(c.expires) {
		users, ips = c.users, c.ips
		c.mu.Unlock()
		return users, ips, nil
	}
	gen := c.generation
	c.mu.Unlock()

	locks, err := operator.Locks(d.db, now)
	if err != nil {
		return 0, 0, err
	}
	expires := now.Add(lockCacheTTL)
	for _, l := range locks {
		if _, ok := account.UserCounter.Name(l.Key); ok {
			users++
		} else if _, ok := account.IPCounter.Name(l.Key); ok {
			ips++
		}
		if end := now.Add(l.RetryAfter); end.Before(expires) {
			expires = end
		}
	}
	c.mu.Lock()
	if c.generation == gen {
		c.valid, c.expires, c.users, c.ips = true, expires, users, ips
	}
	c.mu.Unlock()
	return users, ips, nil
}
