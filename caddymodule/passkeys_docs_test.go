package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// The Caddyfile snippets of docs/passkeys.md are code: each one is adapted
// as written, and every totp_auth handler in it is provisioned (on a
// database in the test's directory), so a snippet that stops parsing or
// starting fails here.

// fencedBlocks returns the bodies of the ```lang blocks of a Markdown text.
func fencedBlocks(md, lang string) []string {
	var out []string
	rest := md
	for {
		i := strings.Index(rest, "```"+lang+"\n")
		if i < 0 {
			return out
		}
		rest = rest[i+len("```"+lang+"\n"):]
		j := strings.Index(rest, "```")
		if j < 0 {
			return out
		}
		out = append(out, rest[:j])
		rest = rest[j+3:]
	}
}

// totpAuthHandlers returns every totp_auth handler of an adapted config.
func totpAuthHandlers(v any) []map[string]any {
	var out []map[string]any
	switch x := v.(type) {
	case map[string]any:
		if x["handler"] == "totp_auth" {
			out = append(out, x)
		}
		for _, c := range x {
			out = append(out, totpAuthHandlers(c)...)
		}
	case []any:
		for _, c := range x {
			out = append(out, totpAuthHandlers(c)...)
		}
	}
	return out
}

// provisionSnippet provisions h as the snippet wrote it, on a database in
// a temporary directory.
func provisionSnippet(t *testing.T, h *TOTPAuth) {
	t.Helper()
	h.DBPath = filepath.Join(t.TempDir(), "totp.db")
	h.EncryptionKey = key64
	mustProvision(t, h)
	if !h.Passkeys {
		t.Error("a snippet of the passkeys page does not turn passkeys on")
	}
}

func TestDocsPasskeys_CaddyfileSnippetsAdaptAndStart(t *testing.T) {
	md, err := os.ReadFile("../docs/passkeys.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := fencedBlocks(string(md), "caddyfile")
	if len(blocks) < 3 {
		t.Fatalf("docs/passkeys.md has %d caddyfile snippets, want at least 3", len(blocks))
	}
	for i, block := range blocks {
		adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(block), nil)
		if err != nil {
			t.Fatalf("snippet %d does not adapt:\n%s\n%v", i+1, block, err)
		}
		var cfg any
		if err := json.Unmarshal(adapted, &cfg); err != nil {
			t.Fatal(err)
		}
		handlers := totpAuthHandlers(cfg)
		if len(handlers) == 0 {
			t.Fatalf("snippet %d has no totp_auth handler:\n%s", i+1, block)
		}
		for _, raw := range handlers {
			b, _ := json.Marshal(raw)
			var h TOTPAuth
			if err := json.Unmarshal(b, &h); err != nil {
				t.Fatal(err)
			}
			provisionSnippet(t, &h)
		}
	}
}

func TestProvision_PasskeyRPIDMustCoverTheCookieDomain(t *testing.T) {
	h := &TOTPAuth{DBPath: filepath.Join(t.TempDir(), "totp.db"), EncryptionKey: key64,
		CookieDomain: "example.com", Passkeys: true, PasskeyRPID: "app.example.com"}
	err := provision(t, h)
	if err == nil {
		_ = h.Cleanup()
		t.Fatal("a passkey_rp_id below cookie_domain was accepted")
	}
	if !strings.Contains(err.Error(), "passkey_rp_id") {
		t.Fatalf("error %q does not name passkey_rp_id", err)
	}
	h = &TOTPAuth{DBPath: filepath.Join(t.TempDir(), "totp.db"), EncryptionKey: key64, Passkeys: true, PasskeyRPID: "https://example.com"}
	if err := provision(t, h); err == nil || !strings.Contains(err.Error(), "bare lower-case domain") {
		_ = h.Cleanup()
		t.Fatalf("a passkey_rp_id with a scheme: %v", err)
	}
}
