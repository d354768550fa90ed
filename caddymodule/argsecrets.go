package caddymodule

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// Secrets on the command line (SPEC §13): every local account can read a
// process's arguments (ps, /proc/<pid>/cmdline) for as long as it runs,
// and a command that waits for a password prompt runs for a while. So
// --postgres, --to-postgres and --key accept placeholders ({env.X},
// {file.X}) that the command resolves itself, the commands read
// TOTP_AUTH_POSTGRES and TOTP_AUTH_KEY, and a password or key given in
// clear gets a warning.

// envPostgres and envKey are the environment variables the commands read
// when no flag and no configuration names the database or its key.
const (
	envPostgres = "TOTP_AUTH_POSTGRES"
	envKey      = "TOTP_AUTH_KEY"
)

// resolveFlag replaces the placeholders {env.X} and {file.X} in the value
// of --flag.
func resolveFlag(flag, value string) (string, error) {
	if value == "" {
		return "", nil
	}
	v, err := caddy.NewReplacer().ReplaceOrErr(value, true, true)
	if err != nil {
		return "", fmt.Errorf("--%s: %w: set the environment variable or file it names", flag, err)
	}
	return strings.TrimSpace(v), nil
}

// inClear reports whether a flag's value is written out on the command
// line rather than named by a placeholder.
func inClear(value string) bool {
	return value != "" && !strings.Contains(value, "{env.") && !strings.Contains(value, "{file.")
}

// dsnPassword matches the password keyword of a libpq keyword/value
// connection string.
var dsnPassword = regexp.MustCompile(`(^|\s)password\s*=`)

// hasPassword reports whether the connection string connString carries a
// password: in a URL's user info or query, or as a keyword.
func hasPassword(connString string) bool {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return strings.Contains(connString, "@") // unparsable: assume the worst
		}
		if _, set := u.User.Password(); set {
			return true
		}
		return u.Query().Has("password")
	}
	return dsnPassword.MatchString(connString)
}

// warnClearSecrets warns on w of each secret written out on the command
// line: a connection string with a password (flag is its flag's name),
// or the key.
func warnClearSecrets(w io.Writer, connStrings map[string]string, key string) {
	for flag, v := range connStrings {
		if inClear(v) && hasPassword(v) {
			fmt.Fprintf(w, "Warning: --%s holds a database password on the command line, where every local account can read it "+
				"while the command runs: give it as --%s '{env.%s}' (or '{file.<path>}'), set %s, or keep the password in ~/.pgpass.\n",
				flag, flag, envPostgres, envPostgres)
		}
	}
	if inClear(key) {
		fmt.Fprintf(w, "Warning: --key holds the encryption key on the command line, where every local account can read it "+
			"while the command runs: give it as --key '{file.<path>}' (or '{env.%s}'), or set %s.\n", envKey, envKey)
	}
}

// postgresFromEnv is the database TOTP_AUTH_POSTGRES names, placeholders
// resolved.
func postgresFromEnv() (string, error) {
	return resolveFlag(envPostgres, os.Getenv(envPostgres))
}
