package caddymodule

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/internal/memstore"
)

const (
	// bcrypt of "secret" at cost 4; the parser only checks its shape.
	bcryptHash = "$2a$04$SrFiw90XNVHBbr8haoOkn.T/sac4R/6I.yC2jNL1M7XbOt5cQ4V9e"
	// An argon2id hash as `caddy hash-password --algorithm argon2id` prints it.
	argon2Hash = "$argon2id$v=19$m=47104,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$Vr2CZs3T2uUwdB9CYTPJ5YmkL0uf5b0rUQ0Mnu6HKzw"
	key64      = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	key64b     = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
)

func boolPtr(b bool) *bool { return &b }
func intPtr(n int) *int    { return &n }

func TestUnmarshalCaddyfile_AcceptsEverySetting(t *testing.T) {
	input := `totp_auth {
		db_path             /var/lib/caddy/totp.db
		encryption_key      ` + key64 + `
		old_encryption_keys ` + key64b + ` {env.TOTP_AUTH_OLD_KEY}
		session_keys        ` + key64 + key64 + ` ` + key64 + `
		issuer              "Home Lab"
		prefix              /auth
		session_ttl         8h
		idle_timeout        30m
		cookie_name         lab_session
		cookie_domain       home.lab
		require_2fa         false
		max_failures        3
		lockout             1h
		max_failures_per_ip 20
		drift               0
		user_header         X-Auth-User
		user                Alice ` + bcryptHash + `
		user                bob ` + base64.StdEncoding.EncodeToString([]byte(argon2Hash)) + `
		app_passwords
	}`
	want := TOTPAuth{
		AppPasswords:      true,
		DBPath:            "/var/lib/caddy/totp.db",
		EncryptionKey:     key64,
		OldEncryptionKeys: []string{key64b, "{env.TOTP_AUTH_OLD_KEY}"},
		SessionKeys:       &SessionKeys{Hash: key64 + key64, Block: key64},
		Issuer:            "Home Lab",
		Prefix:            "/auth",
		SessionTTL:        caddy.Duration(8 * time.Hour),
		IdleTimeout:       caddy.Duration(30 * time.Minute),
		CookieName:        "lab_session",
		CookieDomain:      "home.lab",
		Require2FA:        boolPtr(false),
		MaxFailures:       3,
		Lockout:           caddy.Duration(time.Hour),
		MaxFailuresPerIP:  20,
		Drift:             intPtr(0),
		UserHeader:        "X-Auth-User",
		Users: map[string]string{
			"alice": bcryptHash,
			"bob":   base64.StdEncoding.EncodeToString([]byte(argon2Hash)),
		},
	}
	var got TOTPAuth
	if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatalf("UnmarshalCaddyfile: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestUnmarshalCaddyfile_EmptyBlockTakesDefaults(t *testing.T) {
	for _, input := range []string{"totp_auth", "totp_auth {\n}"} {
		var got TOTPAuth
		if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
			t.Fatalf("%q: %v", input, err)
		}
		if !reflect.DeepEqual(got, TOTPAuth{}) {
			t.Errorf("%q: got %+v, want the zero value", input, got)
		}
	}
}

func TestUnmarshalCaddyfile_PlaceholdersAreCheckedAtLoadTime(t *testing.T) {
	input := `totp_auth {
		encryption_key {env.TOTP_AUTH_KEY}
		session_keys {env.HASH_KEY} {file./etc/caddy/block.key}
	}`
	var got TOTPAuth
	if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatalf("UnmarshalCaddyfile: %v", err)
	}
	if got.EncryptionKey != "{env.TOTP_AUTH_KEY}" || got.SessionKeys.Block != "{file./etc/caddy/block.key}" {
		t.Errorf("placeholders not kept verbatim: %+v", got)
	}
}

func TestUnmarshalCaddyfile_RefusesBadInputNamingTheFix(t *testing.T) {
	tests := []struct {
		name, block string
		wantErr     []string
	}{
		{"argument on directive line", `totp_auth foo {
		}`, []string{"takes no arguments"}},
		{"unknown setting", `user_name alice`, []string{`unknown totp_auth setting "user_name"`, "db_path", "user_header"}},
		{"setting twice", "issuer a\nissuer b", []string{"issuer is set twice"}},
		{"missing value", `db_path`, []string{"db_path takes 1 value(s), got 0", "`db_path <file>`"}},
		{"extra value", `issuer Home Lab`, []string{"issuer takes 1 value(s), got 2"}},
		{"value on a flag", `app_passwords true`, []string{"app_passwords takes no value", "alone on its line"}},
		{"bad duration", `session_ttl 12 hours`, []string{"session_ttl takes 1 value(s), got 2"}},
		{"unparsable duration", `idle_timeout soon`, []string{`idle_timeout "soon" is not a duration`, "15m"}},
		{"zero duration", `lockout 0s`, []string{"lockout must be longer than zero"}},
		{"short key", `encryption_key abcd`, []string{"encryption_key must be 64 hex digits", "got 4 characters", "openssl rand -hex 32"}},
		{"non-hex key", `encryption_key ` + strings.Repeat("zz", 32), []string{"encryption_key must be 64 hex digits"}},
		{"key never echoed", `encryption_key ` + key64[:62], []string{"got 62 characters"}},
		{"short session hash key", `session_keys abcd ` + key64, []string{"hash key must be 64 or 128 hex digits"}},
		{"short session block key", `session_keys ` + key64 + ` ` + key64 + key64, []string{"block key must be 64 hex digits"}},
		{"one session key", `session_keys ` + key64, []string{"session_keys takes 2 value(s), got 1"}},
		{"no old key", `old_encryption_keys`, []string{"old_encryption_keys takes one or more values, got none"}},
		{"short old key", `old_encryption_keys ` + key64b + ` abcd`, []string{"old_encryption_keys: value 2 must be 64 hex digits", "got 4 characters"}},
		{"old keys twice", "old_encryption_keys " + key64b + "\nold_encryption_keys " + key64, []string{"old_encryption_keys is set twice"}},
		{"bad bool", `require_2fa yes-please`, []string{"require_2fa must be true or false"}},
		{"bad number", `max_failures five`, []string{`max_failures must be a whole number of at least 1, got "five"`}},
		{"zero failures", `max_failures_per_ip 0`, []string{"max_failures_per_ip must be a whole number of at least 1"}},
		{"negative drift", `drift -1`, []string{"drift must be a whole number of at least 0"}},
		{"root prefix", `prefix /`, []string{"prefix \"/\" must be a path of its own"}},
		{"relative prefix", `prefix auth`, []string{"must be a path of its own"}},
		{"user without hash", `user alice`, []string{"user takes 2 value(s), got 1", "`user <name> <password-hash>`"}},
		{"plaintext password", `user alice hunter2`, []string{"user alice", "caddy hash-password"}},
		{"truncated bcrypt", `user alice $2a$14$abc`, []string{"user alice: the bcrypt hash is malformed", "caddy hash-password"}},
		{"truncated argon2id", `user alice $argon2id$v=19$m=47104`, []string{"argon2id hash is malformed"}},
		{"other hash scheme", `user alice $1$abc$def`, []string{"neither bcrypt nor argon2id"}},
		{"db_path and postgres", "db_path /a.db\npostgres {env.PG}", []string{"db_path and postgres are both set: keep one"}},
		{"postgres and db_path", "postgres {env.PG}\ndb_path /a.db", []string{"db_path and postgres are both set: keep one"}},
		{"postgres without value", `postgres`, []string{"postgres takes 1 value(s), got 0", "`postgres <connection>`"}},
		{"same user twice", "user Alice " + bcryptHash + "\nuser alice " + bcryptHash, []string{`user "alice" is defined twice`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			input := tc.block
			if !strings.HasPrefix(input, "totp_auth") {
				input = "totp_auth {\n" + tc.block + "\n}"
			}
			var h TOTPAuth
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
			if err == nil {
				t.Fatalf("no error for %q", input)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q does not name the file and line", err)
			}
			if strings.Contains(err.Error(), key64[:62]) {
				t.Errorf("error %q echoes the key", err)
			}
		})
	}
}

func TestUnmarshalCaddyfile_Postgres(t *testing.T) {
	input := `totp_auth {
		postgres       "host=db.internal dbname=totp user=caddy"
		encryption_key {env.TOTP_AUTH_KEY}
	}`
	var h TOTPAuth
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	if h.Postgres != "host=db.internal dbname=totp user=caddy" || h.DBPath != "" {
		t.Fatalf("postgres = %q, db_path = %q", h.Postgres, h.DBPath)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"postgres":"host=db.internal dbname=totp user=caddy"`) {
		t.Fatalf("JSON %s has no postgres field", b)
	}
}

func TestTOTPAuth_JSONRoundTrip(t *testing.T) {
	in := TOTPAuth{
		DBPath:            "/data/totp.db",
		EncryptionKey:     "{env.TOTP_AUTH_KEY}",
		OldEncryptionKeys: []string{"{env.TOTP_AUTH_OLD_KEY}"},
		SessionKeys:       &SessionKeys{Hash: key64, Block: key64},
		Issuer:            "Home Lab",
		Prefix:            "/auth",
		SessionTTL:        caddy.Duration(8 * time.Hour),
		IdleTimeout:       caddy.Duration(30 * time.Minute),
		CookieName:        "lab_session",
		CookieDomain:      "home.lab",
		Require2FA:        boolPtr(true),
		MaxFailures:       3,
		Lockout:           caddy.Duration(time.Hour),
		MaxFailuresPerIP:  20,
		Drift:             intPtr(0),
		UserHeader:        "X-Auth-User",
		Users:             map[string]string{"alice": bcryptHash},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"db_path"`, `"encryption_key"`, `"old_encryption_keys":["{env.TOTP_AUTH_OLD_KEY}"]`, `"session_keys":{"hash"`, `"session_ttl"`, `"idle_timeout"`,
		`"cookie_name"`, `"cookie_domain"`, `"require_2fa":true`, `"max_failures":3`, `"lockout"`, `"max_failures_per_ip":20`,
		`"drift":0`, `"user_header"`, `"users":{"alice"`, `"issuer"`, `"prefix"`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("JSON %s lacks %s", b, field)
		}
	}
	var out TOTPAuth
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip changed the config:\n in  %+v\n out %+v", in, out)
	}
}

func TestTOTPAuth_ZeroValueMarshalsToEmptyObject(t *testing.T) {
	b, err := json.Marshal(TOTPAuth{})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "{}" {
		t.Errorf("got %s, want {} so that adapted configs show only what was set", b)
	}
}

func TestUserHash_EachMistakeHasOneMessageWhereverTheHashComesFrom(t *testing.T) {
	for _, hash := range []string{
		"hunter2",
		"$2a$14$abc",
		base64.StdEncoding.EncodeToString([]byte("$2a$14$abc")),
		"$argon2id$v=19$m=47104",
		"$1$abc$def",
	} {
		t.Run(hash, func(t *testing.T) {
			var h TOTPAuth
			fromCaddyfile := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("totp_auth {\nuser alice " + hash + "\n}"))
			_, fromJSON := canonicalUsers(map[string]string{"alice": hash})
			_, fromGateway := gateway.New(gateway.Config{Store: memstore.New(), Users: map[string][]byte{"alice": decodeHash(hash)}})
			if fromCaddyfile == nil || fromJSON == nil || fromGateway == nil {
				t.Fatalf("accepted: Caddyfile %v, JSON %v, gateway %v", fromCaddyfile, fromJSON, fromGateway)
			}
			_, msg, _ := strings.Cut(fromGateway.Error(), "user alice: ")
			if msg == "" || !strings.Contains(msg, "caddy hash-password") {
				t.Fatalf("gateway message %q does not say how to make a hash", fromGateway)
			}
			for from, err := range map[string]error{"Caddyfile": fromCaddyfile, "JSON": fromJSON} {
				if !strings.Contains(err.Error(), msg) {
					t.Errorf("%s says %q, the gateway %q: want one message", from, err, msg)
				}
			}
		})
	}
}
