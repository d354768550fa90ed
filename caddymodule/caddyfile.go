package caddymodule

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/totp-auth/totp_auth/gateway"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("totp_auth", parseCaddyfile)
	// Authentication comes before everything that serves or proxies, like
	// basic_auth, so no global `order` option is needed.
	httpcaddyfile.RegisterDirectiveOrder("totp_auth", httpcaddyfile.Before, "basic_auth")
}

// subdirectives lists what the totp_auth block understands, with the
// arguments each takes, for error messages.
var subdirectives = []struct{ name, args string }{
	{"db_path", "<file>"},
	{"postgres", "<connection>"},
	{"encryption_key", "<hex64>"},
	{"old_encryption_keys", "<hex64>..."},
	{"session_keys", "<hash-key-hex> <block-key-hex>"},
	{"issuer", "<name>"},
	{"prefix", "<path>"},
	{"session_ttl", "<duration>"},
	{"idle_timeout", "<duration>"},
	{"remember_device", "<duration>"},
	{"cookie_name", "<name>"},
	{"cookie_domain", "<domain>"},
	{"require_2fa", "true|false"},
	{"max_failures", "<n>"},
	{"lockout", "<duration>"},
	{"max_failures_per_ip", "<n>"},
	{"drift", "<steps>"},
	{"user_header", "<name>"},
	{"user", "<name> <password-hash>"},
	{"group", "<name> <user>..."},
	{"allow_users", "<user>..."},
	{"allow_groups", "<group>..."},
	{"portal", "<domain>..."},
	{"passkeys", ""},
	{"passkey_rp_id", "<domain>"},
	{"passkey_login", ""},
	{"app_passwords", ""},
}

// parseCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	totp_auth [<matcher>] {
//	    db_path             <file>
//	    postgres            <connection>
//	    encryption_key      <hex64>
//	    old_encryption_keys <hex64>...
//	    session_keys        <hash-key-hex> <block-key-hex>
//	    issuer              <name>
//	    prefix              <path>
//	    session_ttl         <duration>
//	    idle_timeout        <duration>
//	    remember_device     <duration>
//	    cookie_name         <name>
//	    cookie_domain       <domain>
//	    require_2fa         true|false
//	    max_failures        <n>
//	    lockout             <duration>
//	    max_failures_per_ip <n>
//	    drift               <steps>
//	    user_header         <name>
//	    user                <name> <password-hash>
//	    group               <name> <user>...
//	    allow_users         <user>...
//	    allow_groups        <group>...
//	    portal              <domain>...
//	    passkeys
//	    passkey_rp_id       <domain>
//	    passkey_login
//	    app_passwords
//	}
//
// Every subdirective is optional; user and group may be repeated. A group
// named in allow_groups must be defined by a group line of the same block
// (snippets brought in with import reuse groups across blocks). The defaults are
// documented on the fields of TOTPAuth. Secrets (encryption_key,
// session_keys) may be placeholders such as {env.TOTP_AUTH_KEY}, which are
// read when the configuration is loaded.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	t := new(TOTPAuth)
	err := t.UnmarshalCaddyfile(h.Dispenser)
	return t, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens; see
// parseCaddyfile for the syntax.
func (t *TOTPAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.Errf("totp_auth takes no arguments on its own line, only a block of settings: totp_auth { ... }")
	}
	seen := make(map[string]bool)
	// allow_groups is checked against the groups once the block is read,
	// since a group line may come after it.
	var allowGroupsAt string
	for d.NextBlock(0) {
		name := d.Val()
		args, known := usage(name)
		if !known {
			return d.Errf("unknown totp_auth setting %q: use one of %s", name, settingNames())
		}
		if name != "user" && name != "group" && seen[name] {
			return d.Errf("%s is set twice in this totp_auth block: keep one", name)
		}
		seen[name] = true

		vals := d.RemainingArgs()
		want := len(strings.Fields(args))
		switch variadic := strings.HasSuffix(args, "..."); {
		case want == 0 && len(vals) > 0:
			return d.Errf("%s takes no value: write `%s` alone on its line", name, name)
		case variadic && len(vals) == 0:
			return d.Errf("%s takes one or more values, got none: write it as `%s %s`", name, name, args)
		case !variadic && len(vals) != want:
			return d.Errf("%s takes %d value(s), got %d: write it as `%s %s`", name, want, len(vals), name, args)
		}
		var v string
		if len(vals) > 0 {
			v = vals[0]
		}

		var err error
		switch name {
		case "db_path":
			if seen["postgres"] {
				return d.Errf("db_path and postgres are both set: keep one (db_path is a bbolt file for one instance, postgres a database several instances share)")
			}
			t.DBPath = v
		case "postgres":
			if seen["db_path"] {
				return d.Errf("db_path and postgres are both set: keep one (db_path is a bbolt file for one instance, postgres a database several instances share)")
			}
			t.Postgres = v
		case "encryption_key":
			if !isPlaceholder(v) && !isKey(v) {
				return d.Errf("encryption_key must be 64 hex digits (a 32-byte AES-256 key), got %d characters: "+
					"make one with `openssl rand -hex 32`, or remove the line to have one generated beside the database", len(v))
			}
			t.EncryptionKey = v
		case "old_encryption_keys":
			for i, k := range vals {
				if !isPlaceholder(k) && !isKey(k) {
					return d.Errf("old_encryption_keys: value %d must be 64 hex digits (a 32-byte AES-256 key, "+
						"the encryption_key used before), got %d characters", i+1, len(k))
				}
			}
			t.OldEncryptionKeys = vals
		case "session_keys":
			if err := checkSessionKeys(d, vals[0], vals[1]); err != nil {
				return err
			}
			t.SessionKeys = &SessionKeys{Hash: vals[0], Block: vals[1]}
		case "issuer":
			t.Issuer = v
		case "prefix":
			if !strings.HasPrefix(v, "/") || strings.Trim(v, "/") == "" {
				return d.Errf("prefix %q must be a path of its own below the site root, such as /.totp-auth", v)
			}
			t.Prefix = v
		case "session_ttl":
			t.SessionTTL, err = parseDuration(d, name, v)
		case "idle_timeout":
			t.IdleTimeout, err = parseDuration(d, name, v)
		case "remember_device":
			t.RememberDevice, err = parseDuration(d, name, v)
		case "lockout":
			t.Lockout, err = parseDuration(d, name, v)
		case "cookie_name":
			t.CookieName = v
		case "cookie_domain":
			if cerr := checkCookieDomain(v); cerr != nil {
				return d.Errf("%v", cerr)
			}
			t.CookieDomain = v
		case "require_2fa":
			b, perr := strconv.ParseBool(v)
			if perr != nil {
				return d.Errf("require_2fa must be true or false, got %q", v)
			}
			t.Require2FA = &b
		case "max_failures":
			t.MaxFailures, err = parseCount(d, name, v, 1)
		case "max_failures_per_ip":
			t.MaxFailuresPerIP, err = parseCount(d, name, v, 1)
		case "drift":
			var n int
			if n, err = parseCount(d, name, v, 0); err == nil {
				t.Drift = &n
			}
		case "user_header":
			t.UserHeader = v
		case "user":
			err = t.addUser(d, vals[0], vals[1])
		case "group":
			err = t.addGroup(d, vals)
		case "allow_users":
			t.AllowUsers = vals
		case "allow_groups":
			t.AllowGroups = vals
			allowGroupsAt = d.Errf("").Error()
		case "passkeys":
			t.Passkeys = true
		case "passkey_rp_id":
			t.PasskeyRPID = v
		case "passkey_login":
			t.PasskeyLogin = true
		case "portal":
			for _, domain := range vals {
				if _, perr := gateway.PortalDomain(domain); perr != nil {
					return d.Errf("portal: %v", perr)
				}
			}
			t.Portal = vals
		case "app_passwords":
			t.AppPasswords = true
		}
		if err != nil {
			return err
		}
	}
	for _, group := range t.AllowGroups {
		if _, ok := t.Groups[group]; !ok {
			return fmt.Errorf("allow_groups names group %q, which this totp_auth block does not define: add `group %s <user>...` to it%s",
				group, group, allowGroupsAt)
		}
	}
	return nil
}

// addGroup records one `group <name> <user>...` line.
func (t *TOTPAuth) addGroup(d *caddyfile.Dispenser, vals []string) error {
	if len(vals) < 2 {
		return d.Errf("group %s has no members: write it as `group <name> <user>...`", vals[0])
	}
	name := vals[0]
	if _, dup := t.Groups[name]; dup {
		return d.Errf("group %s is defined twice in this totp_auth block: keep one line", name)
	}
	if t.Groups == nil {
		t.Groups = make(map[string][]string)
	}
	t.Groups[name] = vals[1:]
	return nil
}

// addUser records one `user` line, refusing a second line for the same
// canonical name and a hash that is not what `caddy hash-password` prints
// (gateway.CheckPasswordHash).
func (t *TOTPAuth) addUser(d *caddyfile.Dispenser, name, hash string) error {
	canon := gateway.CanonicalUser(name)
	if canon == "" {
		return d.Errf("user name is empty: write it as `user <name> <password-hash>`")
	}
	if _, dup := t.Users[canon]; dup {
		return d.Errf("user %q is defined twice (user names ignore case and surrounding spaces): keep one line", canon)
	}
	if err := gateway.CheckPasswordHash(decodeHash(hash)); err != nil {
		return d.Errf("user %s: %v", canon, err)
	}
	if t.Users == nil {
		t.Users = make(map[string]string)
	}
	t.Users[canon] = hash
	return nil
}

func checkSessionKeys(d *caddyfile.Dispenser, hashHex, blockHex string) error {
	if !isPlaceholder(hashHex) {
		if k, err := hex.DecodeString(hashHex); err != nil || (len(k) != 32 && len(k) != 64) {
			return d.Errf("session_keys: the hash key must be 64 or 128 hex digits (32 or 64 bytes), got %d characters: "+
				"make one with `openssl rand -hex 64`, or remove the line to have keys generated and kept in the database", len(hashHex))
		}
	}
	if !isPlaceholder(blockHex) {
		if k, err := hex.DecodeString(blockHex); err != nil || len(k) != 32 {
			return d.Errf("session_keys: the block key must be 64 hex digits (32 bytes, AES-256), got %d characters: "+
				"make one with `openssl rand -hex 32`, or remove the line to have keys generated and kept in the database", len(blockHex))
		}
	}
	return nil
}

func parseDuration(d *caddyfile.Dispenser, name, v string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s %q is not a duration: write it like 90s, 15m, 12h or 7d", name, v)
	}
	if dur <= 0 {
		return 0, d.Errf("%s must be longer than zero, got %q", name, v)
	}
	return caddy.Duration(dur), nil
}

func parseCount(d *caddyfile.Dispenser, name, v string, least int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		return 0, d.Errf("%s must be a whole number of at least %d, got %q", name, least, v)
	}
	return n, nil
}

// isKey reports whether v is written as an AES-256 key: 64 hex digits.
func isKey(v string) bool {
	k, err := hex.DecodeString(v)
	return err == nil && len(k) == 32
}

// isPlaceholder reports whether v is filled in when the config is loaded
// (such as {env.TOTP_AUTH_KEY}), so it cannot be checked while parsing.
func isPlaceholder(v string) bool {
	return strings.Contains(v, "{")
}

func usage(name string) (args string, ok bool) {
	for _, s := range subdirectives {
		if s.name == name {
			return s.args, true
		}
	}
	return "", false
}

func settingNames() string {
	names := make([]string, len(subdirectives))
	for i, s := range subdirectives {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}
