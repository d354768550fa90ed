package e2e_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/internal/pgtest"
)

// The commands keep the database password and the key off the command
// line, where every local account reads them while a command runs: the
// flags take {env.X} and {file.X}, TOTP_AUTH_POSTGRES and TOTP_AUTH_KEY
// stand in for them, and a secret written out gets a warning (SPEC §13).
func TestPostgres_CommandsTakeSecretsFromTheEnvironmentAndFiles(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	c := newCaddy(t)
	up := newUpstream(t)
	port := freePort(t)
	c.start(c.caddyfile("", site(port, postgresBlock(dsn, nil, "require_2fa false"), "reverse_proxy "+up.addr())), port)
	keyFile := filepath.Join(t.TempDir(), "totp.key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := c.cli(testPassword+"\n", []string{"THE_DSN=" + dsn}, "user", "add", "dave", "--cost", "4",
		"--postgres", "{env.THE_DSN}", "--key", "{file."+keyFile+"}")
	if err != nil || strings.Contains(out, "Warning") {
		t.Fatalf("user add with placeholders: %v\n%s", err, out)
	}
	onA := passwordSession(t, port, "dave")

	out, err = c.cli("", []string{"TOTP_AUTH_POSTGRES=" + dsn, "TOTP_AUTH_KEY=" + testKey}, "user", "signout", "dave")
	if err != nil || strings.Contains(out, "Warning") {
		t.Fatalf("user signout with TOTP_AUTH_POSTGRES and TOTP_AUTH_KEY: %v\n%s", err, out)
	}
	refusedWithin(t, onA, time.Second, "dave's session after `user signout` through TOTP_AUTH_POSTGRES")

	// Written out on the command line, the password and the key still
	// work, with a warning that says how to keep them off it.
	out, err = c.cli("", nil, "user", "list", "--postgres", dsn+" password=not-a-real-one", "--key", testKey)
	if err != nil || !strings.Contains(out, "dave") {
		t.Fatalf("user list with the secrets in clear: %v\n%s", err, out)
	}
	for _, want := range []string{"Warning: --postgres holds a database password", "Warning: --key holds the encryption key", "{env.TOTP_AUTH_POSTGRES}"} {
		if !strings.Contains(out, want) {
			t.Errorf("no warning %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "not-a-real-one") || strings.Contains(out, testKey) {
		t.Errorf("the warning repeats a secret:\n%s", out)
	}
	if r := login(newClient(t, port), "dave", testPassword); r.status != http.StatusOK {
		t.Fatalf("dave signs in again: %d %s", r.status, r.body)
	}
}
