package caddymodule

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/totp-auth/totp_auth/gateway"
)

// gather returns the value of every sample in reg by metric name and,
// for labelled samples, name{value of the first label}.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			if len(m.GetLabel()) > 0 {
				name += "{" + m.GetLabel()[0].GetValue() + "}"
			}
			out[name] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestMetrics_RegisteredOncePerRegistryAndKeptAcrossRegistries(t *testing.T) {
	first := prometheus.NewPedanticRegistry()
	for i := 0; i < 2; i++ { // two handlers of one configuration
		if err := registerMetrics(first); err != nil {
			t.Fatalf("registration %d: %v", i+1, err)
		}
	}
	before := gather(t, first)["caddy_totp_auth_enrollments_total"]
	recordEvent(offlineDatabase(t), gateway.Event{Kind: "enrollment", Outcome: "ok"})

	// A reload brings a fresh registry; the count carries over.
	second := prometheus.NewPedanticRegistry()
	if err := registerMetrics(second); err != nil {
		t.Fatal(err)
	}
	if got := gather(t, second)["caddy_totp_auth_enrollments_total"]; got != before+1 {
		t.Errorf("enrollments in the new registry = %v, want %v", got, before+1)
	}
}

func TestMetrics_ProvisionRegistersInCaddysRegistry(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &TOTPAuth{DBPath: t.TempDir() + "/totp.db", EncryptionKey: key64}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	if _, ok := gather(t, ctx.GetMetricsRegistry())["caddy_totp_auth_sign_ins_total{ok}"]; !ok {
		t.Error("sign_ins_total is not in the configuration's registry")
	}
}

func TestMetrics_EventsCountAsSignInsLockoutsAndEnrollments(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	d := offlineDatabase(t)
	before := gather(t, reg)
	for _, e := range []gateway.Event{
		{Kind: "password", Outcome: "failure"},
		{Kind: "second_factor", Outcome: "failure"},
		{Kind: "enrollment", Outcome: "failure"},
		{Kind: "password", Outcome: "ok"}, // a step, not a sign-in
		{Kind: "password", Outcome: "locked"},
		{Kind: "second_factor", Outcome: "busy"},
		{Kind: "enrollment", Outcome: "ok"},
		{Kind: "sign_in", Outcome: "ok"},
		{Kind: "lockout", Outcome: "locked"},
		{Kind: "logout", Outcome: "ok"},
	} {
		recordEvent(d, e)
	}
	after := gather(t, reg)
	for name, want := range map[string]float64{
		"caddy_totp_auth_sign_ins_total{failure}": 3,
		"caddy_totp_auth_sign_ins_total{ok}":      1,
		"caddy_totp_auth_sign_ins_total{locked}":  1,
		"caddy_totp_auth_sign_ins_total{busy}":    1,
		"caddy_totp_auth_enrollments_total":       1,
		"caddy_totp_auth_lockouts_total":          1,
		"caddy_totp_auth_events_total{logout}":    1,
	} {
		if got := after[name] - before[name]; got != want {
			t.Errorf("%s rose by %v, want %v", name, got, want)
		}
	}
}

func TestMetrics_LockedUsersFollowLocksAndUnlocks(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	h := &TOTPAuth{DBPath: t.TempDir() + "/totp.db", EncryptionKey: key64}
	mustProvision(t, h)
	d := h.db
	base := gather(t, reg)["caddy_totp_auth_locked_users"]

	now := time.Now()
	lock(t, d, "user:carol", now)
	lock(t, d, "ip:192.0.2.1", now)
	recordEvent(d, gateway.Event{Kind: "lockout", Outcome: "locked"})
	m := gather(t, reg)
	if m["caddy_totp_auth_locked_users"] != base+1 || m["caddy_totp_auth_locked_client_ips"] < 1 {
		t.Fatalf("after a lock: users %v, IPs %v", m["caddy_totp_auth_locked_users"], m["caddy_totp_auth_locked_client_ips"])
	}
	if _, err := d.users().UnlockUser("carol", now); err != nil {
		t.Fatal(err)
	}
	if got := gather(t, reg)["caddy_totp_auth_locked_users"]; got != base {
		t.Errorf("after unlock: locked users %v, want %v", got, base)
	}
}

func TestLockCounts_AreReusedUntilALockEnds(t *testing.T) {
	d := offlineDatabase(t)
	now := time.Now()
	lock(t, d, "user:carol", now) // locked for an hour
	if u, _, err := d.lockCounts(now); err != nil || u != 1 {
		t.Fatalf("lockCounts = %d, %v", u, err)
	}
	// A lock taken without an event (as by another process) is not seen
	// until the cache is invalidated or expires ...
	lock(t, d, "user:dave", now)
	if u, _, _ := d.lockCounts(now.Add(time.Second)); u != 1 {
		t.Errorf("cached count = %d, want 1", u)
	}
	// ... and an ended lock drops out at once.
	if u, _, _ := d.lockCounts(now.Add(2 * time.Hour)); u != 0 {
		t.Errorf("count after the locks ended = %d, want 0", u)
	}
}

func TestMetrics_AppPasswordRequestsByOutcome(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	before := gather(t, reg)
	for _, o := range appPasswordOutcomes {
		if _, ok := before["caddy_totp_auth_app_password_requests_total{"+string(o)+"}"]; !ok {
			t.Errorf("outcome %s is not present from the start", o)
		}
	}
	d := testDatabase(t)
	recordEvent(d, gateway.Event{Kind: gateway.EventAppPassword, Outcome: gateway.OutcomeOK})
	recordEvent(d, gateway.Event{Kind: gateway.EventAppPassword, Outcome: gateway.OutcomeOutOfScope})
	recordEvent(d, gateway.Event{Kind: gateway.EventAppPasswordChange, Outcome: gateway.OutcomeOK})
	after := gather(t, reg)
	for o, want := range map[gateway.Outcome]float64{gateway.OutcomeOK: 1, gateway.OutcomeOutOfScope: 1, gateway.OutcomeFailure: 0} {
		name := "caddy_totp_auth_app_password_requests_total{" + string(o) + "}"
		if got := after[name] - before[name]; got != want {
			t.Errorf("%s rose by %v, want %v", name, got, want)
		}
	}
}
