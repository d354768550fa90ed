package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// Defaults for the zero values of Config.
const (
	DefaultPrefix           = "/.totp-auth"
	DefaultSessionTTL       = 12 * time.Hour
	DefaultIdleTimeout      = time.Hour
	DefaultCookieName       = "totp_auth_session"
	DefaultMaxFailures      = 5
	DefaultLockout          = 15 * time.Minute
	DefaultMaxFailuresPerIP = 50
	DefaultDrift            = 1
	DefaultUserHeader       = "Remote-User"
	// DefaultBackupCodeCost keeps a check of all ten backup-code hashes
	// near one cost-14 password check's CPU; 40 bits per code and the
	// lockout carry the rest.
	DefaultBackupCodeCost = 10
	// DefaultDecoyCost is the bcrypt cost of the decoy hash while no
	// configured or stored hash shapes it: what `caddy hash-password`
	// makes.
	DefaultDecoyCost = 14

	// PendingTTL is how long a pending cookie (password checked, second
	// factor not yet) stays valid.
	PendingTTL = 5 * time.Minute
	// EnrollmentTTL is how long a shown but unconfirmed TOTP secret stays
	// confirmable.
	EnrollmentTTL = 10 * time.Minute
)

// Config is everything a Gateway needs. Zero values take the documented
// defaults; New validates the result.
type Config struct {
	// Issuer is shown in authenticator apps. Empty: the request's host.
	Issuer string
	// Prefix is the path under which the built-in pages live.
	Prefix string
	// SessionTTL is the absolute lifetime of a session.
	SessionTTL time.Duration
	// IdleTimeout ends a session that saw no request for this long.
	IdleTimeout time.Duration
	// CookieName names the session cookie; the pending cookie and the CSRF
	// cookie take it as their prefix.
	CookieName string
	// CookieDomain, when set, shares the session with all subdomains.
	CookieDomain string
	// RememberDevice, when above 0, offers "Remember this device" at the
	// second factor: a device cookie that skips the second factor on that
	// browser for this long (SPEC §16). 0, the default, never offers it
	// and honours no device cookie.
	RememberDevice time.Duration
	// Optional2FA lets users without TOTP sign in with the password alone.
	// The default (false) forces enrollment at first sign-in.
	Optional2FA bool
	// MaxFailures is how many failed password or code attempts lock a user.
	MaxFailures int
	// Lockout is both the window in which failures count and the lock length.
	Lockout time.Duration
	// MaxFailuresPerIP is how many failures one client address may cause,
	// across all users, per Lockout window.
	MaxFailuresPerIP int
	// Drift is how many 30-second steps before and after now a TOTP code
	// may be from. Unlike the other fields, 0 means exactly that (only the
	// current step); callers pass DefaultDrift for the default.
	Drift int
	// UserHeader carries the user name upstream; it is always removed from
	// the client's own request, in every spelling.
	UserHeader string
	// Users maps canonical user names to bcrypt or argon2id password hashes.
	Users map[string][]byte
	// Groups maps group names to the canonical names of their members
	// (SPEC §11). Default: no groups.
	Groups map[string][]string
	// Allow is who may pass this gateway. The zero Policy (the default)
	// lets every user pass.
	Allow Policy
	// PortalDomains, when set, make this gateway the sign-in portal for
	// those domains and their subdomains (SPEC §12): verify answers other
	// proxies, and the sign-in flow may send a browser back to an absolute
	// URL under them. Default: none (no portal mode).
	PortalDomains []string
	// TrustedProxy reports whether the caller of r is one whose forwarded
	// headers may be believed (Caddy's trusted_proxies). Verify refuses
	// every other caller. Default (nil): no caller is trusted.
	TrustedProxy func(r *http.Request) bool
	// AppPasswords lets requests through with a user's app password in a
	// Basic Authorization header (SPEC §15), and lets users make them on
	// the account page. Default false: Basic credentials are not read.
	AppPasswords bool

	// Passkeys offers passkeys (WebAuthn) as a second factor beside TOTP
	// (SPEC §14). Default: off.
	Passkeys bool
	// PasskeyRPID is the WebAuthn relying party id passkeys are scoped to:
	// a domain equal to or above every host that uses them. Default: the
	// CookieDomain when set, else the host of the request that registers.
	PasskeyRPID string
	// PasskeyLogin also offers a sign-in with a passkey alone (a
	// discoverable credential with user verification required). It turns
	// Passkeys on. Default: off.
	PasskeyLogin bool

	// SessionHashKey and SessionBlockKey are the cookie keys; when nil they
	// are generated once and kept in the Store.
	SessionHashKey, SessionBlockKey []byte

	// Store keeps accounts, counters and keys. Required.
	Store account.Store
	// Clock tells the time; nil means the system clock.
	Clock Clock
	// Logger receives one line per security event; nil means no logging.
	Logger *zap.Logger
	// ClientIP returns the client address the server trusts for r (Caddy's
	// client_ip, which honours trusted_proxies); nil means r.RemoteAddr.
	ClientIP func(r *http.Request) string
	// Events, when set, is told of every sign-in outcome (for metrics).
	Events func(Event)
	// HashWorkers bounds how many password or backup-code hashes are
	// checked at once; 0 means one. HashQueue is how many more may wait;
	// 0 means 8. Anything beyond is refused at once with 503.
	HashWorkers, HashQueue int
	// BackupCodeCost is the bcrypt cost of the backup-code hashes made at
	// enrollment and regeneration. 0 means DefaultBackupCodeCost (10); it
	// must lie between bcrypt.MinCost (4) and bcrypt.MaxCost (31). Only
	// tests have a reason to lower it.
	BackupCodeCost int
	// DecoyCost is the bcrypt cost of the decoy hash, checked for a name
	// that is no user (SPEC §4 rule 24), while no configured or stored
	// hash is there to shape it. 0 means DefaultDecoyCost (14); it must
	// lie between bcrypt.MinCost (4) and bcrypt.MaxCost (31). Only tests
	// have a reason to lower it.
	DecoyCost int
	// BusyPause is how long a request refused for a full hashing queue is
	// held before its 503 goes out. It is refused at once (it never waits
	// for, or takes, a hashing slot); the pause only keeps clients that
	// ignore Retry-After from turning refusals into a CPU flood of their
	// own. 0 means 500ms; negative means none.
	BusyPause time.Duration
}

// Clock tells the current time.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Prefix = "/" + strings.Trim(c.Prefix, "/")
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.CookieName == "" {
		c.CookieName = DefaultCookieName
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	if c.Lockout == 0 {
		c.Lockout = DefaultLockout
	}
	if c.MaxFailuresPerIP == 0 {
		c.MaxFailuresPerIP = DefaultMaxFailuresPerIP
	}
	if c.UserHeader == "" {
		c.UserHeader = DefaultUserHeader
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.ClientIP == nil {
		c.ClientIP = remoteIP
	}
	if c.HashWorkers <= 0 {
		c.HashWorkers = 1
	}
	if c.HashQueue <= 0 {
		c.HashQueue = 8
	}
	if c.TrustedProxy == nil {
		c.TrustedProxy = func(*http.Request) bool { return false }
	}
	if c.BackupCodeCost == 0 {
		c.BackupCodeCost = DefaultBackupCodeCost
	}
	if c.DecoyCost == 0 {
		c.DecoyCost = DefaultDecoyCost
	}
	if c.PasskeyLogin {
		c.Passkeys = true
	}
	if c.BusyPause == 0 {
		c.BusyPause = 500 * time.Millisecond
	}
}

// Validate reports the first setting that cannot work, saying how to fix it.
// It expects defaults to be applied.
func (c *Config) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("no store configured")
	case c.Prefix == "/":
		return errors.New("prefix must not be /: the built-in pages need a path of their own, e.g. /.totp-auth")
	case strings.ContainsAny(c.Prefix, "?#% \t\r\n\\"):
		return fmt.Errorf("prefix %q may hold only plain path characters", c.Prefix)
	case c.SessionTTL < 0 || c.IdleTimeout < 0 || c.Lockout < 0:
		return errors.New("session_ttl, idle_timeout and lockout must be positive durations")
	case c.RememberDevice < 0:
		return errors.New("remember_device must be a positive duration, or 0 to leave it off")
	case c.IdleTimeout > c.SessionTTL:
		return fmt.Errorf("idle_timeout (%s) is longer than session_ttl (%s); make it shorter or equal", c.IdleTimeout, c.SessionTTL)
	case c.MaxFailures < 0 || c.MaxFailuresPerIP < 0:
		return errors.New("max_failures and max_failures_per_ip must be positive")
	case c.Drift < 0 || c.Drift > 10:
		return fmt.Errorf("drift %d is out of range: use 0 to 10 steps of 30 s (default 1)", c.Drift)
	case !validName(c.CookieName):
		return fmt.Errorf("cookie_name %q is not a valid cookie name: use letters, digits, '_' or '-'", c.CookieName)
	case !validName(c.UserHeader):
		return fmt.Errorf("user_header %q is not a valid header name", c.UserHeader)
	case c.BackupCodeCost < bcrypt.MinCost || c.BackupCodeCost > bcrypt.MaxCost:
		return fmt.Errorf("backup code cost %d is out of range: use %d to %d (default %d)", c.BackupCodeCost, bcrypt.MinCost, bcrypt.MaxCost, DefaultBackupCodeCost)
	case c.DecoyCost < bcrypt.MinCost || c.DecoyCost > bcrypt.MaxCost:
		return fmt.Errorf("decoy cost %d is out of range: use %d to %d (default %d)", c.DecoyCost, bcrypt.MinCost, bcrypt.MaxCost, DefaultDecoyCost)
	case (c.SessionHashKey == nil) != (c.SessionBlockKey == nil):
		return errors.New("session_keys needs both a hash key and a block key")
	}
	if c.SessionHashKey != nil && len(c.SessionHashKey) < 32 {
		return fmt.Errorf("session hash key is %d bytes; use 32 or 64 random bytes", len(c.SessionHashKey))
	}
	if c.SessionBlockKey != nil && len(c.SessionBlockKey) != 32 {
		return fmt.Errorf("session block key is %d bytes; use exactly 32 random bytes (AES-256)", len(c.SessionBlockKey))
	}
	if c.PasskeyRPID != "" && (c.PasskeyRPID != strings.ToLower(c.PasskeyRPID) || !validDomain(c.PasskeyRPID)) {
		return fmt.Errorf("passkey_rp_id %q is not a domain name: write the bare lower-case domain, e.g. example.com (no scheme, port or path)", c.PasskeyRPID)
	}
	if c.PasskeyRPID != "" && c.CookieDomain != "" {
		cd := strings.TrimPrefix(strings.ToLower(c.CookieDomain), ".")
		if cd != c.PasskeyRPID && !strings.HasSuffix(cd, "."+c.PasskeyRPID) {
			return fmt.Errorf("passkey_rp_id %q is not cookie_domain %q or a domain above it: passkeys would not work on the hosts that share the session", c.PasskeyRPID, c.CookieDomain)
		}
	}
	if err := checkGroups(c.Groups); err != nil {
		return err
	}
	if err := checkPolicy(c.Allow, c.Groups, "allow"); err != nil {
		return err
	}
	for _, d := range c.PortalDomains {
		if canon, err := PortalDomain(d); err != nil {
			return err
		} else if canon != d {
			return fmt.Errorf("portal domain %q is not in canonical form: write %q", d, canon)
		}
	}
	for name, hash := range c.Users {
		if name != CanonicalUser(name) || name == "" {
			return fmt.Errorf("user name %q is not canonical: use lower case without surrounding spaces", name)
		}
		if err := CheckPasswordHash(hash); err != nil {
			return fmt.Errorf("user %s: %w", name, err)
		}
	}
	return nil
}

// CanonicalUser is the form of a user name used for lookups, counters and
// sessions, so that "Alice" and "alice " are one user.
func CanonicalUser(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}

// validName reports whether s is usable as a cookie or header name here:
// letters, digits, '_' and '-'.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
