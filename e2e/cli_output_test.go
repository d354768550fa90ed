package e2e_test

import (
	"strings"
	"testing"
)

// The commands print their answer and nothing else, and when something is
// wrong they say what, in the words the operator used.
func TestCLI_PrintsOnlyItsAnswerAndNamesWhatWasUsed(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	cfg := c.writeConfig("Caddyfile", c.caddyfile("", site(freePort(t), c.keyFileBlock("totp.db", nil), "respond ok")))
	run := func(stdin string, env []string, args ...string) (string, error) {
		t.Helper()
		out, err := c.cli(stdin, env, args...)
		if strings.Contains(out, `"level":`) || strings.Contains(out, `"msg":`) {
			t.Errorf("caddy totp-auth %s printed Caddy's log lines:\n%s", strings.Join(args, " "), out)
		}
		return out, err
	}
	out, err := run(testPassword+"\n", nil, "user", "add", "dave", "--cost", "4", "--config", cfg)
	if err != nil || strings.TrimSpace(out) != "Added dave. They set up their authenticator app at their first sign-in." {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	if out, err := run("", nil, "user", "list", "--config", cfg); err != nil || !strings.Contains(out, "dave") {
		t.Fatalf("user list: %v\n%s", err, out)
	}

	// backup without a file shows how, with - for standard output.
	out, err = run("", nil, "backup", "--config", cfg)
	if err == nil || !strings.Contains(out, "caddy totp-auth backup - > totp.db") || !strings.Contains(out, "or - for standard output") {
		t.Fatalf("backup without a file: %v\n%s", err, out)
	}

	// A wrong key is named by where it came from.
	const wrongKey = "1111111111111111111111111111111111111111111111111111111111111111"
	db := c.path("totp.db")
	if out, err := run("", nil, "user", "list", "--db", db, "--key", wrongKey); err == nil || !strings.Contains(out, "the key from --key") {
		t.Fatalf("a wrong --key: %v\n%s", err, out)
	}
	if out, err := run("", []string{"TOTP_AUTH_KEY=" + wrongKey}, "user", "list", "--db", db); err == nil || !strings.Contains(out, "the key from TOTP_AUTH_KEY") {
		t.Fatalf("a wrong TOTP_AUTH_KEY: %v\n%s", err, out)
	}

	// postgres {env.TOTP_AUTH_POSTGRES} with the variable unset here.
	pgCfg := c.writeConfig("Caddyfile.pg", c.caddyfile("", site(freePort(t),
		"totp_auth {\n\t\tpostgres {env.TOTP_AUTH_POSTGRES}\n\t\tencryption_key {env.TOTP_AUTH_KEY}\n\t}", "respond ok")))
	out, err = run("", []string{"TOTP_AUTH_POSTGRES="}, "user", "list", "--config", pgCfg)
	if err == nil || !strings.Contains(out, "postgres {env.TOTP_AUTH_POSTGRES} is empty in this shell") || strings.Contains(out, "--db") {
		t.Fatalf("an unset TOTP_AUTH_POSTGRES: %v\n%s", err, out)
	}

	// --help points at this project's documentation.
	if out, _ := run("", nil, "--help"); !strings.Contains(out, "docs/operations.md") {
		t.Fatalf("caddy totp-auth --help does not point at docs/operations.md:\n%s", out)
	}
}
