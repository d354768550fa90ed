package caddymodule

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestUnmarshalCaddyfile_PoliciesAndPortal(t *testing.T) {
	input := `totp_auth {
		allow_groups admins ops
		group        admins alice Carol
		group        ops    dave
		allow_users  bob
		portal       example.com other.example.net
	}`
	var got TOTPAuth
	if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	want := TOTPAuth{
		Groups:      map[string][]string{"admins": {"alice", "Carol"}, "ops": {"dave"}},
		AllowUsers:  []string{"bob"},
		AllowGroups: []string{"admins", "ops"},
		Portal:      []string{"example.com", "other.example.net"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	b, _ := json.Marshal(got)
	for _, field := range []string{`"groups":{"admins":["alice","Carol"]`, `"allow_users":["bob"]`, `"allow_groups":["admins","ops"]`, `"portal":["example.com","other.example.net"]`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("JSON %s lacks %s", b, field)
		}
	}
}

func TestUnmarshalCaddyfile_PolicyMistakesNameTheLine(t *testing.T) {
	tests := []struct {
		name, block string
		want        []string
	}{
		{"unknown group", "group admins alice\nallow_groups admins staff", []string{`allow_groups names group "staff"`, "group staff <user>", "Testfile:3"}},
		{"empty allow_users", "allow_users", []string{"allow_users takes one or more values, got none", "Testfile:2"}},
		{"empty allow_groups", "allow_groups", []string{"allow_groups takes one or more values, got none"}},
		{"group without members", "group admins", []string{"group admins has no members", "Testfile:2"}},
		{"group without name", "group", []string{"group takes one or more values"}},
		{"group twice", "group a x\ngroup a y", []string{"group a is defined twice", "Testfile:3"}},
		{"allow_users twice", "allow_users a\nallow_users b", []string{"allow_users is set twice"}},
		{"empty portal", "portal", []string{"portal takes one or more values"}},
		{"portal with scheme", "portal https://example.com", []string{"plain domain", "Testfile:2"}},
		{"portal wildcard", "portal *.example.com", []string{"plain domain"}},
		{"portal single label", "portal com", []string{"single label"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h TOTPAuth
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("totp_auth {\n" + tc.block + "\n}"))
			if err == nil {
				t.Fatalf("no error for %q", tc.block)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestProvision_PolicyMistakesInJSONAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*TOTPAuth)
		want string
	}{
		{"empty allow_users", func(h *TOTPAuth) { h.AllowUsers = []string{} }, "allow_users is an empty list"},
		{"empty allow_groups", func(h *TOTPAuth) { h.AllowGroups = []string{} }, "allow_groups is an empty list"},
		{"unknown group", func(h *TOTPAuth) { h.AllowGroups = []string{"admins"} }, `group "admins" is not defined`},
		{"empty group", func(h *TOTPAuth) { h.Groups = map[string][]string{"admins": {}} }, "group admins has no members"},
		{"bad portal", func(h *TOTPAuth) { h.Portal = []string{"example.com:443"} }, "plain domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &TOTPAuth{DBPath: filepath.Join(t.TempDir(), "totp.db"), EncryptionKey: key64}
			tc.mod(h)
			err := provision(t, h)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestTrustedProxy_IsCaddysVerdict(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if trustedProxy(r) {
		t.Error("a request Caddy did not mark is trusted")
	}
	for _, v := range []bool{false, true} {
		vars := map[string]any{caddyhttp.TrustedProxyVarKey: v}
		rr := r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
		if got := trustedProxy(rr); got != v {
			t.Errorf("Caddy says trusted=%v, trustedProxy says %v", v, got)
		}
	}
}

func TestProvision_WarnsOfPortalDomainsTheCookieDoesNotReach(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	h := &TOTPAuth{CookieDomain: "example.com", logger: zap.New(core)}
	h.warnUncoveredPortal([]string{"example.com", "app.example.com", "other.example.net"})
	if n := logs.FilterMessageSnippet("not covered by cookie_domain").Len(); n != 1 {
		t.Fatalf("%d warnings, want 1 (for other.example.net)", n)
	}
	if got := logs.All()[0].ContextMap()["portal_domain"]; got != "other.example.net" {
		t.Errorf("warning names %v, want other.example.net", got)
	}
}
