package caddymodule

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/totp-auth/totp_auth/internal/operator"
	"github.com/totp-auth/totp_auth/internal/pgtest"
	"github.com/totp-auth/totp_auth/storage"
	"github.com/totp-auth/totp_auth/storage/postgres"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// runCommands runs `caddy totp-auth args...` in this process and returns
// its standard output and error output.
func runCommands(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "totp-auth", SilenceUsage: true, SilenceErrors: true}
	addCommands(root)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

// postgresWithUser makes a PostgreSQL database under key64 holding the
// user bob.
func postgresWithUser(t *testing.T) string {
	t.Helper()
	dsn := pgtest.Database(t)
	key, err := secrets.ParseKey(key64)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), postgresOpenTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, dsn, postgres.Options{Keys: []secrets.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := operator.SetPassword(db, "bob", mustHash(t, "pw")); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// databaseFileWithUser makes a database file under key64 whose user has a
// password; add, when not nil, stores more before the file is closed for
// a command to open. It returns the file's path.
func databaseFileWithUser(t *testing.T, user string, add func(*storage.DB)) string {
	t.Helper()
	key, err := secrets.ParseKey(key64)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "totp.db")
	db, err := storage.Open(path, storage.Options{Keys: []secrets.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	if err := operator.SetPassword(db, user, mustHash(t, "pw")); err != nil {
		t.Fatal(err)
	}
	if add != nil {
		add(db)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCommands_PostgresAndKeyComeFromPlaceholdersOrTheEnvironment(t *testing.T) {
	dsn := postgresWithUser(t)
	keyFile := filepath.Join(t.TempDir(), "totp.key")
	if err := os.WriteFile(keyFile, []byte(key64+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("THE_DSN", dsn)
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"{env.X} and {file.X}", nil, []string{"--postgres", "{env.THE_DSN}", "--key", "{file." + keyFile + "}"}},
		{"{file.X} for both", nil, []string{"--postgres", "{file." + dsnFile + "}", "--key", "{file." + keyFile + "}"}},
		{"TOTP_AUTH_POSTGRES and TOTP_AUTH_KEY", map[string]string{"TOTP_AUTH_POSTGRES": dsn, "TOTP_AUTH_KEY": key64}, nil},
		{"TOTP_AUTH_POSTGRES as a placeholder", map[string]string{"TOTP_AUTH_POSTGRES": "{env.THE_DSN}", "TOTP_AUTH_KEY": key64}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			out, errOut, err := runCommands(t, append([]string{"user", "list"}, tt.args...)...)
			if err != nil || !strings.Contains(out, "bob") {
				t.Fatalf("user list: %v\n%s%s", err, out, errOut)
			}
			if strings.Contains(errOut, "Warning") {
				t.Errorf("a warning though no secret is on the command line:\n%s", errOut)
			}
		})
	}
}

func TestCommands_SecretsWrittenOutOnTheCommandLineGetAWarning(t *testing.T) {
	dsn := postgresWithUser(t)
	withPassword := dsn + " password=hunter2"
	_, errOut, err := runCommands(t, "user", "list", "--postgres", withPassword, "--key", key64)
	if err != nil {
		t.Fatalf("user list: %v\n%s", err, errOut)
	}
	for _, want := range []string{"--postgres holds a database password", "--key holds the encryption key", "{env.TOTP_AUTH_POSTGRES}", "{file.<path>}"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("no warning %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "hunter2") || strings.Contains(errOut, key64) {
		t.Errorf("the warning repeats the secret:\n%s", errOut)
	}
	for _, conn := range []string{"postgres://caddy:hunter2@db/totp", "postgresql://caddy@db/totp?password=hunter2", "host=db password = hunter2"} {
		if !hasPassword(conn) {
			t.Errorf("%q: no password found", conn)
		}
	}
	for _, conn := range []string{"postgres://caddy@db/totp", "host=db user=caddy passfile=/x", "host=/run/postgresql dbname=totp"} {
		if hasPassword(conn) {
			t.Errorf("%q: a password found where there is none", conn)
		}
	}
}

func TestCommands_MigrateTakesTheDatabaseFromTheEnvironment(t *testing.T) {
	path := databaseFileWithUser(t, "carol", nil)
	t.Setenv("TOTP_AUTH_POSTGRES", pgtest.Database(t))
	t.Setenv("TOTP_AUTH_KEY", key64)
	out, errOut, err := runCommands(t, "migrate", "--db", path)
	if err != nil || !strings.Contains(out, "1 users") {
		t.Fatalf("migrate with TOTP_AUTH_POSTGRES: %v\n%s%s", err, out, errOut)
	}
	os.Unsetenv("TOTP_AUTH_POSTGRES")
	if _, _, err := runCommands(t, "migrate", "--db", path); err == nil || !strings.Contains(err.Error(), "TOTP_AUTH_POSTGRES") {
		t.Fatalf("migrate without a database to copy into: %v, want a refusal naming TOTP_AUTH_POSTGRES", err)
	}
}
