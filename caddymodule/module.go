// Package caddymodule is the Caddy adapter for totp_auth: it registers the
// http.handlers.totp_auth module and its Caddyfile directive, turns the
// configuration into a gateway.Config, opens the database, and hands every
// request to the gateway. It also holds the Caddy side of what operators
// use while Caddy runs or not: the admin API module admin.api.totp_auth,
// the `caddy totp-auth` commands (their tree, what they run, finding the
// database they work on, talking to a running Caddy), key files and
// rotation, backups, and the Prometheus metrics. The user operations
// themselves work on any store and live in internal/operator.
//
// Nothing about passwords, TOTP, sessions or lockout lives here; that is the
// gateway package. Build it into Caddy with
//
//	xcaddy build --with github.com/totp-auth/totp_auth/caddymodule
package caddymodule

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway"
)

func init() {
	caddy.RegisterModule(TOTPAuth{})
}

// TOTPAuth puts password + TOTP two-factor authentication in front of the
// handlers that follow it. A request without a valid session never reaches
// them: browsers are sent to the sign-in page, other clients get 401.
//
// Once a request is authenticated, the placeholder `{http.auth.user.id}` is
// set to the user name (as basic_auth does), and the user name is sent
// upstream in the user_header request header.
type TOTPAuth struct {
	// The bbolt database file that holds enrollments, backup codes, failure
	// counters and the session keys. Site blocks that name the same file
	// share one database. Default: totp_auth/totp.db in Caddy's data
	// directory.
	DBPath string `json:"db_path,omitempty"`

	// A PostgreSQL database to keep everything in instead of a bbolt file,
	// so that several Caddy instances share accounts, lockouts, sessions
	// and revocations: a libpq connection string ("host=db dbname=totp
	// user=caddy") or a URL (postgres://caddy@db/totp), which may be a
	// placeholder such as {env.TOTP_AUTH_POSTGRES}. It excludes db_path
	// and requires encryption_key (there is no key file). Site blocks and
	// reloads naming the same connection string share its connections.
	// Connect to PostgreSQL itself, or to PgBouncer in session mode: each
	// instance keeps one connection LISTENing for changes, which
	// transaction pooling breaks. Default: none (the bbolt file).
	Postgres string `json:"postgres,omitempty"`

	// The AES-256 key that encrypts TOTP secrets at rest, as 64 hex digits.
	// It may be a placeholder such as {env.TOTP_AUTH_KEY} or
	// {file./etc/caddy/totp.key}. Default: a key generated once into a file
	// beside the database (db_path + ".key", mode 0600); a warning in the log
	// says where, because losing it means every user must enroll again.
	EncryptionKey string `json:"encryption_key,omitempty"`

	// Earlier encryption keys that are still accepted, in the same form as
	// encryption_key. Secrets found under one of them are re-encrypted
	// under encryption_key in one transaction when the database is opened,
	// or when a reload brings a new encryption_key to an open database.
	// To rotate a configured key, set encryption_key to the new key and
	// move the old one here; remove it once Caddy has loaded the new key.
	// Default: none.
	OldEncryptionKeys []string `json:"old_encryption_keys,omitempty"`

	// The keys that sign and encrypt session cookies. Default: generated
	// once and kept in the database, so sessions survive restarts and reloads.
	SessionKeys *SessionKeys `json:"session_keys,omitempty"`

	// The issuer shown in authenticator apps. Default: the site's host name.
	Issuer string `json:"issuer,omitempty"`

	// The path under which the sign-in pages and their JSON API live.
	// Default: /.totp-auth
	Prefix string `json:"prefix,omitempty"`

	// The absolute lifetime of a session. Default: 12h
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`

	// How long a session may go without a request before it ends; every
	// request slides it. Default: 1h
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// How long "Remember this device" at the second factor lets that
	// browser skip the second factor at later sign-ins (the password is
	// always asked), such as 30d. Only blocks with it set offer the
	// checkbox and honour a device cookie. Default: 0, off.
	RememberDevice caddy.Duration `json:"remember_device,omitempty"`

	// The name of the session cookie. Default: totp_auth_session
	CookieName string `json:"cookie_name,omitempty"`

	// The domain of the session cookie, to share one session with all
	// subdomains. A public suffix (home.arpa, lan, com) is refused at
	// start, since browsers drop such a cookie. Default: none (the cookie
	// belongs to this host only).
	CookieDomain string `json:"cookie_domain,omitempty"`

	// Whether a user without TOTP must enroll at first sign-in. When false,
	// such a user signs in with the password alone. Default: true
	Require2FA *bool `json:"require_2fa,omitempty"`

	// How many failed password or code attempts within one lockout window
	// lock a user. Default: 5
	MaxFailures int `json:"max_failures,omitempty"`

	// Both the window in which failures count and how long a lock lasts.
	// Default: 15m
	Lockout caddy.Duration `json:"lockout,omitempty"`

	// How many failed attempts one client IP may cause, across all users,
	// per lockout window. Default: 50
	MaxFailuresPerIP int `json:"max_failures_per_ip,omitempty"`

	// How many 30-second steps before and after now a TOTP code may be
	// from. Default: 1
	Drift *int `json:"drift,omitempty"`

	// The request header that carries the user name upstream. Any spelling
	// of it sent by the client is always removed. Default: Remote-User
	UserHeader string `json:"user_header,omitempty"`

	// Users defined in the configuration, by name, with their password
	// hash as `caddy hash-password` prints it (bcrypt or argon2id; base64
	// of it is accepted too). Names ignore case and surrounding spaces.
	// Default: none (users may also live in the database).
	Users map[string]string `json:"users,omitempty"`

	// Groups of users, by group name, each with the names of its members
	// (Caddyfile or database users). The upstream receives a signed-in
	// user's groups in the Remote-Groups header, comma-separated; any
	// spelling of that header sent by the client is always removed.
	// Default: no groups.
	Groups map[string][]string `json:"groups,omitempty"`

	// The users who may pass this handler. A signed-in user who is neither
	// listed here nor a member of a group in allow_groups gets 403.
	// Default: every user may pass (when allow_groups is not set either).
	AllowUsers []string `json:"allow_users,omitempty"`

	// The groups (defined in groups) whose members may pass this handler;
	// with allow_users, being in either one suffices. Default: every user
	// may pass (when allow_users is not set either).
	AllowGroups []string `json:"allow_groups,omitempty"`

	// Makes this handler the sign-in portal for other servers and proxies
	// on these domains and their subdomains: GET <prefix>/verify answers
	// Caddy's forward_auth and Traefik, GET <prefix>/verify/nginx answers
	// nginx auth_request, and the sign-in flow may end at an absolute URL
	// under these domains. Verify believes forwarded headers only from
	// callers the server's trusted_proxies trusts. Set cookie_domain to a
	// parent of these domains (and of the portal's own name), or their
	// apps never receive the session cookie; Caddy warns at start when it
	// does not cover one. The server holding a portal block must refuse
	// requests for hosts none of its sites name (Caddy answers them with
	// an empty 200, which every forward-auth proxy reads as "allowed"):
	// end the Caddyfile with a site such as `http://:8443 { respond 421 }`
	// on the portal's port; Caddy does not start otherwise. A forward-auth
	// check that reaches any portal path but a verify endpoint gets 400.
	// Default: none (no portal mode; the verify endpoints answer 404).
	Portal []string `json:"portal,omitempty"`

	// Offers passkeys (WebAuthn) as a second factor beside TOTP: users
	// may register passkeys at first sign-in or from the account page, and
	// use one instead of a code. Passkeys need https (or the host name
	// localhost); elsewhere the pages do not offer them and TOTP keeps
	// working. Default: false
	Passkeys bool `json:"passkeys,omitempty"`

	// The WebAuthn relying party id passkeys are scoped to: a domain equal
	// to or above every host that uses them (a passkey registered here is
	// offered on every host under it). Default: cookie_domain when set,
	// else the host of the request that registers the passkey.
	PasskeyRPID string `json:"passkey_rp_id,omitempty"`

	// Also offers "Sign in with a passkey" on the login page: a passkey
	// alone signs in, when its authenticator verified the user (a PIN or
	// a biometric). It turns passkeys on. Default: false
	PasskeyLogin bool `json:"passkey_login,omitempty"`
	// Accepts app passwords: a request with `Authorization: Basic
	// <user:app password>` passes as that user (SPEC §15), for sync
	// clients, phones' apps and scripts that cannot show the sign-in page.
	// Users make and revoke them on the account page. On such a handler a
	// Basic Authorization header never reaches the upstream, and a request
	// with neither a session nor a browser's Accept gets 401 with
	// WWW-Authenticate: Basic. Default: false (Basic credentials are not
	// read, and the upstream receives them unchanged).
	AppPasswords bool `json:"app_passwords,omitempty"`

	gateway *gateway.Gateway
	// dbKey is the key this handler holds in databases, "" if none.
	dbKey string
	// db is the database it holds, once its configuration is recorded there.
	db     *database
	logger *zap.Logger
}

// SessionKeys are the securecookie keys for session cookies, in hex.
type SessionKeys struct {
	// The HMAC-SHA256 key that signs cookies: 32 or 64 random bytes.
	Hash string `json:"hash,omitempty"`
	// The AES-256 key that encrypts cookies: exactly 32 random bytes.
	Block string `json:"block,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (TOTPAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.totp_auth",
		New: func() caddy.Module { return new(TOTPAuth) },
	}
}

// Provision opens (or shares) the database and builds the gateway.
func (t *TOTPAuth) Provision(ctx caddy.Context) error {
	t.logger = ctx.Logger()
	if err := checkCookieDomain(t.CookieDomain); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	users, err := canonicalUsers(t.Users)
	if err != nil {
		return err
	}

	d, keys, err := t.openDatabase(repl)
	if err != nil {
		return err
	}
	lockout := time.Duration(t.Lockout)
	if lockout == 0 {
		lockout = gateway.DefaultLockout
	}
	userNames := make(map[string]bool, len(users))
	for name := range users {
		userNames[name] = true
	}
	if err := d.hold(t, holder{users: userNames, config: ctx.Context, keyFile: keys.file, lockout: lockout}); err != nil {
		return err
	}
	go d.settleWhenInForce(ctx.Context)
	t.db = d
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}

	groups, allow, portal, err := t.policy()
	if err != nil {
		return err
	}
	t.warnUncoveredPortal(portal)
	if len(portal) > 0 {
		if err := requirePortalCheck(ctx); err != nil {
			return err
		}
	}
	cfg := gateway.Config{
		Groups:           groups,
		Allow:            allow,
		PortalDomains:    portal,
		TrustedProxy:     trustedProxy,
		Issuer:           t.Issuer,
		Prefix:           t.Prefix,
		SessionTTL:       time.Duration(t.SessionTTL),
		IdleTimeout:      time.Duration(t.IdleTimeout),
		RememberDevice:   time.Duration(t.RememberDevice),
		CookieName:       t.CookieName,
		CookieDomain:     t.CookieDomain,
		Optional2FA:      t.Require2FA != nil && !*t.Require2FA,
		MaxFailures:      t.MaxFailures,
		Lockout:          time.Duration(t.Lockout),
		MaxFailuresPerIP: t.MaxFailuresPerIP,
		Drift:            gateway.DefaultDrift,
		UserHeader:       t.UserHeader,
		Users:            users,
		Store:            d.db,
		Logger:           t.logger,
		ClientIP:         clientIP,
		Events:           func(e gateway.Event) { recordEvent(d, e) },
		Passkeys:         t.Passkeys,
		PasskeyRPID:      strings.ToLower(t.PasskeyRPID),
		PasskeyLogin:     t.PasskeyLogin,
		AppPasswords:     t.AppPasswords,
	}
	if t.Drift != nil {
		cfg.Drift = *t.Drift
	}
	if lowCosts {
		cfg.DecoyCost, cfg.BackupCodeCost = bcrypt.MinCost, bcrypt.MinCost
	}
	if t.SessionKeys != nil {
		if cfg.SessionHashKey, cfg.SessionBlockKey, err = t.SessionKeys.decode(repl); err != nil {
			return err
		}
	}
	t.gateway, err = gateway.New(cfg)
	return err
}

// lowCosts, set only by this package's tests, gives every gateway
// Provision makes the lowest bcrypt cost for the decoy and backup-code
// hashes, costs that exist to slow attackers and that no test here
// measures (gateway's own tests do).
var lowCosts bool

// openDatabase opens, or finds open, the database this handler names and
// holds it; Cleanup lets go, also after an error.
func (t *TOTPAuth) openDatabase(repl *caddy.Replacer) (*database, keySet, error) {
	if t.Postgres != "" {
		if t.DBPath != "" {
			return nil, keySet{}, errors.New("db_path and postgres are both set: keep one (db_path is a bbolt file for one instance, postgres a database several instances share)")
		}
		if t.EncryptionKey == "" {
			return nil, keySet{}, errPostgresNeedsKey
		}
		connString, err := repl.ReplaceOrErr(t.Postgres, true, true)
		if err != nil {
			return nil, keySet{}, fmt.Errorf("postgres: %w: set the environment variable or file it names", err)
		}
		keys, err := keySource{current: t.EncryptionKey, old: t.OldEncryptionKeys}.resolve(repl, "", false, t.logger)
		if err != nil {
			return nil, keySet{}, err
		}
		d, held, err := openSharedPostgres(connString, keys, t.logger)
		if held {
			t.dbKey = postgresPoolKey(connString)
		}
		return d, keys, err
	}
	dbPath := repl.ReplaceKnown(t.DBPath, "")
	if dbPath == "" {
		dbPath = defaultDBPath()
	}
	dbPath, err := filepath.Abs(dbPath)
	if err != nil {
		return nil, keySet{}, fmt.Errorf("db_path %s: %w", dbPath, err)
	}
	keys, err := keySource{current: t.EncryptionKey, old: t.OldEncryptionKeys}.resolve(repl, dbPath, true, t.logger)
	if err != nil {
		return nil, keySet{}, err
	}
	d, held, err := openSharedDatabase(dbPath, keys, t.logger)
	if held {
		t.dbKey = dbPath // held from here on; Cleanup lets go, also after a failed Provision
	}
	return d, keys, err
}

// Cleanup releases this handler's hold on the database; the last holder
// closes it. A reload provisions the new configuration before it cleans up
// the old one, so a database that both name stays open throughout.
func (t *TOTPAuth) Cleanup() error {
	if t.db != nil {
		t.db.release(t)
		t.db = nil
	}
	if t.dbKey == "" {
		return nil
	}
	key := t.dbKey
	t.dbKey = ""
	closed, err := databases.Delete(key)
	if err != nil {
		return fmt.Errorf("close totp_auth database %s: %w", databaseName(key), err)
	}
	if closed {
		t.logger.Debug("closed database", zap.String("database", databaseName(key)))
	}
	return nil
}

// ServeHTTP lets the request through only when the gateway says it is
// authenticated; otherwise the gateway has already answered it.
func (t *TOTPAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	user, ok := t.gateway.Handle(w, r)
	if !ok {
		return nil
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.auth.user.id", user)
	return next.ServeHTTP(w, r)
}

// defaultDBPath is where the database lives when db_path is not set.
func defaultDBPath() string {
	return filepath.Join(caddy.AppDataDir(), "totp_auth", "totp.db")
}

// clientIP is the address Caddy determined for the request, which honours
// the server's trusted_proxies; never a raw X-Forwarded-For.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (k *SessionKeys) decode(repl *caddy.Replacer) (hashKey, blockKey []byte, err error) {
	hashHex, err := repl.ReplaceOrErr(k.Hash, true, true)
	if err != nil {
		return nil, nil, fmt.Errorf("session_keys hash: %w: set the environment variable or file it names", err)
	}
	blockHex, err := repl.ReplaceOrErr(k.Block, true, true)
	if err != nil {
		return nil, nil, fmt.Errorf("session_keys block: %w: set the environment variable or file it names", err)
	}
	if hashKey, err = hex.DecodeString(strings.TrimSpace(hashHex)); err != nil {
		return nil, nil, errors.New("session_keys hash is not hex: use 64 or 128 hex digits, e.g. from `openssl rand -hex 64`")
	}
	if blockKey, err = hex.DecodeString(strings.TrimSpace(blockHex)); err != nil {
		return nil, nil, errors.New("session_keys block is not hex: use 64 hex digits, e.g. from `openssl rand -hex 32`")
	}
	return hashKey, blockKey, nil
}

// canonicalUsers keys the configured users by canonical name and decodes
// their hashes.
func canonicalUsers(users map[string]string) (map[string][]byte, error) {
	if len(users) == 0 {
		return nil, nil
	}
	out := make(map[string][]byte, len(users))
	for name, hash := range users {
		canon := gateway.CanonicalUser(name)
		if canon == "" {
			return nil, errors.New("users: a user name is empty")
		}
		if _, dup := out[canon]; dup {
			return nil, fmt.Errorf("users: %q is defined twice (user names ignore case and surrounding spaces): keep one", canon)
		}
		h := decodeHash(hash)
		if err := gateway.CheckPasswordHash(h); err != nil {
			return nil, fmt.Errorf("users: %s: %w", canon, err)
		}
		out[canon] = h
	}
	return out, nil
}

// decodeHash accepts a hash as `caddy hash-password` prints it, or base64
// of it, as basic_auth historically required. Anything else it returns as
// it is, for gateway.CheckPasswordHash to refuse.
func decodeHash(s string) []byte {
	if !strings.HasPrefix(s, "$") {
		if b, err := base64.StdEncoding.DecodeString(s); err == nil && strings.HasPrefix(string(b), "$") {
			return b
		}
	}
	return []byte(s)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*TOTPAuth)(nil)
	_ caddy.CleanerUpper          = (*TOTPAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*TOTPAuth)(nil)
	_ caddyfile.Unmarshaler       = (*TOTPAuth)(nil)
)
