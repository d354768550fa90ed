package gateway

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gorilla/securecookie"
	"go.uber.org/zap"
)

var (
	//go:embed assets/style.css
	styleCSS string
	//go:embed assets/pages.html
	pagesHTML string
	// sessionsHTML is the account page's lists of sessions and devices.
	//go:embed assets/sessions.html
	sessionsHTML string
	// pagesJS is the one script of the pages: copy and print buttons and
	// passkeys, which stay hidden without it (the pages work without
	// JavaScript).
	//go:embed assets/pages.js
	pagesJS string
	// appPasswordsHTML holds the app-password parts of the account page
	// and the page that shows a new one.
	//go:embed assets/apppasswords.html
	appPasswordsHTML string
)

// Gateway is the sign-in flow for one site. It is safe for concurrent use.
type Gateway struct {
	cfg   Config
	codec *cookieCodec
	// ceremonies signs and encrypts the passkey ceremony cookie.
	ceremonies *securecookie.SecureCookie
	csrfKey    []byte
	// nameKey keys the hash that stands for unknown user names.
	nameKey       []byte
	csp           string
	pages         *template.Template
	userHeaderKey string
	hashes        *hashLimiter
	sessions      sessionCache
	// posted remembers the one-time form tokens posted to this process.
	posted postedTokens
	// credentials fingerprints each configured user's password hash.
	credentials map[string]uint64
	lockLines   lockLines
	// memberOf maps users to their groups; portal is PortalDomains.
	memberOf map[string][]string
	portal   []string
	activity activity
	// lastSeen writes the registry's last-seen times in the background.
	lastSeen lastSeenWriter
	// originals caches accepted verify headers (see readOriginal), and
	// selfHosts the accepted Hosts of verify requests (see selfHost).
	originals originalCache
	selfHosts boundedCache[string]
	// userHeaderName is cfg.UserHeader in canonical form; groupsOf holds
	// GroupsHeader's value for each user in a group.
	userHeaderName string
	groupsOf       map[string]string
	// verifyPolicies caches the policies of verify queries (see verifyPolicy).
	verifyPolicies verifyPolicies
	// verifyLog bounds the log lines of refused verify calls.
	verifyLog logLimiter
	// paused counts busy refusals being held (see Config.BusyPause).
	paused atomic.Int32
	// appKey keys the hashes of app passwords; locks and uses keep their
	// checks off the store (see apppassworduse.go).
	appKey    []byte
	appHashes sync.Pool // of hmac hashes keyed with appKey
	locks     lockView
	uses      useRecorder

	// decoy is checked in place of an unknown user's hash (decoy.go).
	decoy *decoy
}

// New checks cfg, fills in its defaults and returns a ready Gateway.
func New(cfg Config) (*Gateway, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	hashKey, blockKey := cfg.SessionHashKey, cfg.SessionBlockKey
	var storedHashKey []byte
	if hashKey == nil || cfg.AppPasswords {
		var err error
		storedHashKey, blockKey, err = cfg.Store.SessionKeys(generateSessionKeys)
		if err != nil {
			return nil, fmt.Errorf("load session keys: %w", err)
		}
		if hashKey == nil {
			hashKey = storedHashKey
		} else {
			blockKey = cfg.SessionBlockKey
		}
	}
	pages, err := template.New("pages").Parse(pagesHTML)
	if err == nil {
		pages, err = pages.Parse(appPasswordsHTML)
	}
	if err == nil {
		pages, err = pages.Parse(sessionsHTML)
	}
	if err != nil {
		return nil, fmt.Errorf("parse page templates: %w", err)
	}
	csrfKey := hmac.New(sha256.New, hashKey)
	csrfKey.Write([]byte("totp_auth csrf v1"))
	nameKey := hmac.New(sha256.New, hashKey)
	nameKey.Write([]byte("totp_auth unknown names v1"))
	g := &Gateway{
		cfg:            cfg,
		codec:          newCookieCodec(hashKey, blockKey),
		ceremonies:     newCeremonyCodec(hashKey, blockKey),
		csrfKey:        csrfKey.Sum(nil),
		nameKey:        nameKey.Sum(nil),
		csp:            contentSecurityPolicy(styleCSS, pagesJS),
		pages:          pages,
		userHeaderKey:  headerKey(cfg.UserHeader),
		hashes:         newHashLimiter(cfg.HashWorkers, cfg.HashQueue),
		credentials:    credentials(hashKey, cfg.Users),
		decoy:          newDecoy(),
		memberOf:       membership(cfg.Groups),
		userHeaderName: http.CanonicalHeaderKey(cfg.UserHeader),
		portal:         cfg.PortalDomains,
		locks:          lockView{store: cfg.Store, logger: cfg.Logger},
		uses:           useRecorder{logger: cfg.Logger},
	}
	if cfg.AppPasswords {
		g.appKey = appPasswordKey(storedHashKey)
	}
	g.groupsOf = groupsValues(g.memberOf)
	go g.decoyHash()
	return g, nil
}

// generateSessionKeys makes the cookie keys a store keeps when none are
// configured.
func generateSessionKeys() ([]byte, []byte, error) {
	h, b := make([]byte, 64), make([]byte, 32)
	if _, err := rand.Read(h); err != nil {
		return nil, nil, err
	}
	_, err := rand.Read(b)
	return h, b, err
}

// Handle serves the built-in pages and gates everything else. When it
// returns ok, r carries the user header (and no client-supplied spelling of
// it), no longer carries the gateway's own cookies, and may go on to the
// upstream; otherwise Handle has written the response itself.
func (g *Gateway) Handle(w http.ResponseWriter, r *http.Request) (user string, ok bool) {
	g.stripIdentity(r.Header)
	var basicUser, basicValue string
	var basic bool
	if g.cfg.AppPasswords {
		basicUser, basicValue, basic = takeBasic(r)
	}
	sub, isAuth := g.authPath(r.URL.Path)
	if isAuth {
		// Verify answers another proxy on every request of its apps: it
		// goes first, and sets the page headers only on pages it shows.
		if flavor, ok := verifyPath(sub); ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			g.verify(w, r, flavor)
			return "", false
		}
	}
	if g.portal != nil && forwardAuthCheck(r.Header) {
		g.misdirectedCheck(w, r)
		return "", false
	}
	if isAuth {
		g.securityHeaders(w)
		g.serveAuth(w, r, sub)
		return "", false
	}
	now := g.cfg.Clock.Now()
	s, state, err := g.session(r, now)
	switch {
	case err != nil:
		g.internalError(w, r, "check session", err)
		return "", false
	case s == nil && basic:
		user, ok := g.passAppPassword(w, r, basicUser, basicValue, now)
		if ok {
			g.passUpstream(r, user, "app_password")
		}
		return user, ok
	case s == nil:
		g.gateRefuse(w, r)
		return "", false
	case !g.Admits(*s):
		g.stepUp(w, r, s, state, r.URL.RequestURI())
		return "", false
	case state.MustRegenerate:
		g.securityHeaders(w)
		g.requireRegeneration(w, r)
		return "", false
	case !g.allows(g.cfg.Allow, s.User):
		g.forbidden(w, r, s.User)
		return "", false
	}
	if now.Sub(s.LastSeen) >= g.slideAfter() {
		s.LastSeen = now
		if err := g.setSessionCookie(w, r, *s); err != nil {
			g.internalError(w, r, "refresh session cookie", err)
			return "", false
		}
	}
	g.seen(s, now)
	g.passUpstream(r, s.User, upstreamFactor(s.Factor))
	return s.User, true
}

// passUpstream readies r to go on to the upstream as user's, proven by
// factor (FactorHeader): without the gateway's own cookies, with the
// identity headers the gateway sets.
func (g *Gateway) passUpstream(r *http.Request, user, factor string) {
	g.stripOwnCookies(r.Header)
	g.stripIdentityTrailers(r)
	// Set, with one allocation for the values, under keys already
	// canonical: this is every signed-in request's path.
	vals := []string{user, factor, g.groupsValue(user)}
	r.Header[g.userHeaderName] = vals[0:1:1]
	r.Header[factorHeaderName] = vals[1:2:2]
	if vals[2] != "" {
		r.Header[groupsHeaderName] = vals[2:3:3]
	}
}

// Middleware wraps next so that only signed-in requests reach it.
func (g *Gateway) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := g.Handle(w, r); ok {
			next.ServeHTTP(w, r)
		}
	})
}

// authPath reports whether path is one of the built-in pages, and which.
func (g *Gateway) authPath(path string) (string, bool) {
	if path == g.cfg.Prefix {
		return "", true
	}
	if rest, ok := strings.CutPrefix(path, g.cfg.Prefix+"/"); ok {
		return rest, true
	}
	return "", false
}

// requireRegeneration holds a user who spent a backup code at the
// backup-codes page until a fresh set exists.
func (g *Gateway) requireRegeneration(w http.ResponseWriter, r *http.Request) {
	if wantsJSON(r) || !acceptsHTML(r) {
		jsonError(w, http.StatusForbidden, codeRegenerateBackupCodes)
		return
	}
	target := g.pageURL(pathBackupCodes) + "?redirect=" + url.QueryEscape(SafeRedirect(r.URL.RequestURI()))
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// internalError fails closed: the request goes nowhere, the cause is
// logged (store errors never carry secrets) and the client learns nothing.
func (g *Gateway) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	g.cfg.Logger.Error("totp_auth: "+what, zap.Error(err), zap.String("client_ip", g.cfg.ClientIP(r)))
	// Answered even when err is a cancellation: a handler that writes
	// nothing answers 200, which a forward-auth proxy takes for a pass.
	jsonError(w, http.StatusInternalServerError, codeInternalError)
}

// issuer is the name authenticator apps show: the configured one, or the
// site's host.
func (g *Gateway) issuer(r *http.Request) string {
	if g.cfg.Issuer != "" {
		return g.cfg.Issuer
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host
}
