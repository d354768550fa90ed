package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// lineOf returns the 1-based line of the first line of text containing s.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	for i, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not in the Caddyfile", s)
	return 0
}

func TestConfigErrors_ValidateNamesTheLineAndTheFix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, line string
		want       []string
	}{
		{"unknown subdirective", "user_name alice", []string{`unknown totp_auth setting "user_name"`}},
		{"bad duration", "session_ttl forever", []string{`session_ttl "forever" is not a duration`, "12h"}},
		{"key of the wrong length", "encryption_key abc123", []string{"encryption_key must be 64 hex digits", "openssl rand -hex 32"}},
		{"malformed hash", "user alice $2a$14$cut.short", []string{"bcrypt hash is malformed", "caddy hash-password"}},
		{"bad number", "max_failures lots", []string{"max_failures must be a whole number"}},
		{"bad boolean", "require_2fa maybe", []string{"require_2fa must be true or false"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCaddy(t)
			cfg := c.caddyfile("", site(freePort(t), "totp_auth {\n\t\tdb_path "+c.path("totp.db")+"\n\t\t"+tc.line+"\n\t}", "respond ok"))
			file := c.writeConfig("Caddyfile", cfg)
			out, err := c.run("validate", "--config", file, "--adapter", "caddyfile")
			if err == nil {
				t.Fatalf("caddy validate accepted the config:\n%s", out)
			}
			out = strings.ReplaceAll(out, `\"`, `"`) // Caddy logs the error as JSON
			at := fmt.Sprintf("Caddyfile:%d", lineOf(t, cfg, tc.line))
			for _, want := range append([]string{at}, tc.want...) {
				if !strings.Contains(out, want) {
					t.Errorf("caddy validate output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestConfigErrors_RunRefusesToStart(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	cfg := c.caddyfile("", site(port, "totp_auth {\n\t\tlockout 15 minutes\n\t}", "respond ok"))
	if err := c.tryStart(cfg, port); err == nil {
		t.Fatal("caddy run started with a bad totp_auth block")
	}
	if !c.waitExit(10 * time.Second) {
		t.Fatal("caddy run did not exit")
	}
	want := fmt.Sprintf("Caddyfile:%d", lineOf(t, cfg, "lockout 15 minutes"))
	if log := c.log.String(); !strings.Contains(log, want) || !strings.Contains(log, "lockout takes 1 value(s), got 2") {
		t.Errorf("caddy run output does not name %s and the problem:\n%s", want, log)
	}
}

func TestConfigErrors_ProvisioningRefusalSaysWhatToChange(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	cfg := c.caddyfile("", site(freePort(t),
		"totp_auth {\n\t\tdb_path "+c.path("totp.db")+"\n\t\tencryption_key "+testKey+"\n\t\tsession_ttl 1h\n\t\tidle_timeout 2h\n\t}",
		"respond ok"))
	out, err := c.run("validate", "--config", c.writeConfig("Caddyfile", cfg), "--adapter", "caddyfile")
	if err == nil {
		t.Fatalf("caddy validate accepted idle_timeout longer than session_ttl:\n%s", out)
	}
	if !strings.Contains(out, "idle_timeout") || !strings.Contains(out, "session_ttl") {
		t.Errorf("caddy validate output does not name the settings to change:\n%s", out)
	}
}
