package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/totp-auth/totp_auth/gateway"
)

func TestUnmarshalCaddyfile_Passkeys(t *testing.T) {
	var got TOTPAuth
	d := caddyfile.NewTestDispenser(`totp_auth {
		passkeys
		passkey_rp_id example.com
		passkey_login
	}`)
	if err := got.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if !got.Passkeys || got.PasskeyRPID != "example.com" || !got.PasskeyLogin {
		t.Fatalf("parsed %+v", got)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"passkeys":true`, `"passkey_rp_id":"example.com"`, `"passkey_login":true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
}

func TestUnmarshalCaddyfile_PasskeysTakesNoValue(t *testing.T) {
	for _, input := range []string{"totp_auth {\n passkeys on\n}", "totp_auth {\n passkey_login yes\n}", "totp_auth {\n passkey_rp_id\n}"} {
		var got TOTPAuth
		err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), "write it as") {
			t.Errorf("%q: error %v, want one that shows how to write it", input, err)
		}
	}
}

func TestMetrics_SignInsCountByFactor(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	d := testDatabase(t, offlineHolder{})
	before := gather(t, reg)
	for _, e := range []gateway.Event{
		{Kind: gateway.EventSignIn, Outcome: gateway.OutcomeOK, Factor: gateway.FactorPasskey},
		{Kind: gateway.EventSignIn, Outcome: gateway.OutcomeOK, Factor: gateway.FactorPasskey},
		{Kind: gateway.EventSignIn, Outcome: gateway.OutcomeOK, Factor: gateway.FactorTOTP},
	} {
		recordEvent(d, e)
	}
	after := gather(t, reg)
	for name, want := range map[string]float64{
		"caddy_totp_auth_sign_ins_by_factor_total{passkey}":     2,
		"caddy_totp_auth_sign_ins_by_factor_total{totp}":        1,
		"caddy_totp_auth_sign_ins_by_factor_total{backup_code}": 0,
		"caddy_totp_auth_sign_ins_total{ok}":                    3,
	} {
		if _, present := after[name]; !present {
			t.Errorf("%s is not exported", name)
		}
		if got := after[name] - before[name]; got != want {
			t.Errorf("%s rose by %v, want %v", name, got, want)
		}
	}
}
