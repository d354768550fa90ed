package caddymodule

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// provision provisions h the way Caddy does: a failed Provision is
// followed by Cleanup.
func provision(t *testing.T, h *TOTPAuth) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := h.Provision(ctx)
	if err != nil {
		if cerr := h.Cleanup(); cerr != nil {
			t.Errorf("Cleanup after failed Provision: %v", cerr)
		}
	}
	return err
}

func mustProvision(t *testing.T, h *TOTPAuth) {
	t.Helper()
	if err := provision(t, h); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
}

func TestProvision_TwoHandlersWithOneDBPathShareTheDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "totp.db")
	a := &TOTPAuth{DBPath: path, EncryptionKey: key64}
	b := &TOTPAuth{DBPath: path, EncryptionKey: key64}
	done := make(chan struct{})
	go func() {
		defer close(done)
		mustProvision(t, a)
		mustProvision(t, b)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("the second handler waited for the database lock instead of sharing the open database")
	}
	if _, ok := databases.References(path); !ok {
		t.Fatal("database not in the pool")
	}
	if n, _ := databases.References(path); n != 2 {
		t.Errorf("pool references = %d, want 2", n)
	}
}

func TestProvision_ReloadKeepsTheDatabaseOpenUntilTheLastHolderLetsGo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "totp.db")
	old := &TOTPAuth{DBPath: path, EncryptionKey: key64}
	if err := provision(t, old); err != nil {
		t.Fatal(err)
	}
	// A reload provisions the new configuration before cleaning up the old.
	replacement := &TOTPAuth{DBPath: path, EncryptionKey: key64, Issuer: "changed"}
	if err := provision(t, replacement); err != nil {
		t.Fatal(err)
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if n, ok := databases.References(path); !ok || n != 1 {
		t.Fatalf("after the old config's Cleanup: references = %d (in pool: %v), want 1", n, ok)
	}
	if err := old.Cleanup(); err != nil || func() int { n, _ := databases.References(path); return n }() != 1 {
		t.Fatalf("a second Cleanup of the same handler released someone else's hold (err %v)", err)
	}
	if err := replacement.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, ok := databases.References(path); ok {
		t.Fatal("database still open after its last holder was cleaned up")
	}
}

func TestProvision_SameDBPathWithAnotherKeyIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "totp.db")
	mustProvision(t, &TOTPAuth{DBPath: path, EncryptionKey: key64})
	other := strings.Repeat("ab", 32)
	err := provision(t, &TOTPAuth{DBPath: path, EncryptionKey: other})
	if err == nil || !strings.Contains(err.Error(), "already open with a different encryption_key") {
		t.Fatalf("err = %v, want a clear refusal", err)
	}
	if strings.Contains(err.Error(), other) || strings.Contains(err.Error(), key64) {
		t.Errorf("error %q reveals a key", err)
	}
	if n, _ := databases.References(path); n != 1 {
		t.Errorf("the refused handler kept its hold: references = %d, want 1", n)
	}
}

func TestProvision_GeneratesKeyFileOnceBesideTheDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "totp.db")
	first := &TOTPAuth{DBPath: path}
	if err := provision(t, first); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path + ".key")
	if err != nil {
		t.Fatalf("no key file beside the database: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", info.Mode().Perm())
	}
	key, _ := os.ReadFile(path + ".key")
	if err := first.Cleanup(); err != nil {
		t.Fatal(err)
	}

	mustProvision(t, &TOTPAuth{DBPath: path})
	again, _ := os.ReadFile(path + ".key")
	if string(again) != string(key) {
		t.Error("the key file was replaced on the second start")
	}
}

func TestProvision_ExistingDatabaseWithoutKeyFileIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "totp.db")
	h := &TOTPAuth{DBPath: path}
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path + ".key"); err != nil {
		t.Fatal(err)
	}
	err := provision(t, &TOTPAuth{DBPath: path})
	if err == nil || !strings.Contains(err.Error(), "key file") || !strings.Contains(err.Error(), "restore") {
		t.Fatalf("err = %v, want a refusal that says to restore the key file", err)
	}
	if _, statErr := os.Stat(path + ".key"); statErr == nil {
		t.Error("a new key was generated for a database written with another one")
	}
}

func TestProvision_EncryptionKeyFromEnvironment(t *testing.T) {
	t.Setenv("TOTP_AUTH_TEST_KEY", key64)
	mustProvision(t, &TOTPAuth{DBPath: filepath.Join(t.TempDir(), "totp.db"), EncryptionKey: "{env.TOTP_AUTH_TEST_KEY}"})
}

func TestProvision_UnsetEnvironmentKeyIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "totp.db")
	err := provision(t, &TOTPAuth{DBPath: path, EncryptionKey: "{env.TOTP_AUTH_TEST_UNSET}"})
	if err == nil || !strings.Contains(err.Error(), "encryption_key") {
		t.Fatalf("err = %v, want a refusal naming encryption_key", err)
	}
	if _, statErr := os.Stat(path + ".key"); statErr == nil {
		t.Error("an unset key fell back to a generated key file")
	}
}

func TestProvision_UsersAreCanonicalAndUnique(t *testing.T) {
	path := filepath.Join(t.TempDir(), "totp.db")
	err := provision(t, &TOTPAuth{DBPath: path, EncryptionKey: key64,
		Users: map[string]string{"Alice": bcryptHash, " alice": bcryptHash}})
	if err == nil || !strings.Contains(err.Error(), `"alice" is defined twice`) {
		t.Fatalf("err = %v, want a duplicate-user refusal", err)
	}
	mustProvision(t, &TOTPAuth{DBPath: path, EncryptionKey: key64, Users: map[string]string{"Alice": bcryptHash}})
}

func TestProvision_GatewayRefusalIsPassedOn(t *testing.T) {
	err := provision(t, &TOTPAuth{DBPath: filepath.Join(t.TempDir(), "totp.db"), EncryptionKey: key64,
		SessionTTL: caddy.Duration(time.Hour), IdleTimeout: caddy.Duration(2 * time.Hour)})
	if err == nil || !strings.Contains(err.Error(), "idle_timeout") {
		t.Fatalf("err = %v, want the gateway's idle_timeout refusal", err)
	}
}

func TestClientIP_UsesTheAddressCaddyDetermined(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.2:5555"
	r.Header.Set("X-Forwarded-For", "198.51.100.7")
	if got := clientIP(r); got != "10.0.0.2" {
		t.Errorf("without Caddy's client_ip: %q, want the connection's address 10.0.0.2", got)
	}
	vars := map[string]any{caddyhttp.ClientIPVarKey: "203.0.113.9"}
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
	if got := clientIP(r); got != "203.0.113.9" {
		t.Errorf("with Caddy's client_ip: %q, want 203.0.113.9 (never X-Forwarded-For)", got)
	}
}
