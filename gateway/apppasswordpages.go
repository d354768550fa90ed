package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Making, listing and revoking app passwords on the account page and
// through the JSON API (SPEC §15). A new one is shown once, on a page of
// its own reached by a redirect, with the same rules as new backup codes
// (codespage.go): reloadable for a minute, only by the session that made it.

// maxAppPasswordName bounds the name a user gives an app password.
const maxAppPasswordName = 64

// appPasswordRow is one app password as lists show it.
type appPasswordRow struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	Created    string  `json:"created"`
	LastUsed   *string `json:"last_used"`
	LastUsedIP *string `json:"last_used_ip"`
	Expires    *string `json:"expires"`
	ReadOnly   bool    `json:"read_only"`
	PathPrefix *string `json:"path_prefix"`
	// Scope says the same in words, for the page.
	Scope string `json:"-"`
}

// appPasswordsView is what the account page shows of app passwords.
type appPasswordsView struct {
	List []appPasswordRow
	Max  int
	// New is the app password just made, on the page that shows it once.
	New *shownAppPassword
}

// rfc3339 is t as JSON writes times: RFC 3339, or null when there is none.
func rfc3339(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

// appPasswordRows lists acct's app passwords that have not expired at now.
func appPasswordRows(acct account.Account, now time.Time) []appPasswordRow {
	rows := []appPasswordRow{}
	for _, p := range acct.AppPasswords {
		if !p.Expires.IsZero() && !now.Before(p.Expires) {
			continue
		}
		row := appPasswordRow{ID: p.ID, Name: p.Name, Created: p.Created.UTC().Format(time.RFC3339),
			LastUsed: rfc3339(p.LastUsed), Expires: rfc3339(p.Expires), ReadOnly: p.ReadOnly}
		if p.LastUsedIP != "" {
			ip := p.LastUsedIP
			row.LastUsedIP = &ip
		}
		if p.PathPrefix != "" {
			prefix := p.PathPrefix
			row.PathPrefix = &prefix
		}
		row.Scope = scopeWords(p.ReadOnly, p.PathPrefix)
		rows = append(rows, row)
	}
	return rows
}

func scopeWords(readOnly bool, prefix string) string {
	switch {
	case readOnly && prefix != "":
		return "read-only, " + prefix
	case readOnly:
		return "read-only, everything"
	case prefix != "":
		return prefix
	}
	return "everything"
}

// appPasswordsOff answers a request for app passwords on a block without them.
func (g *Gateway) appPasswordsOff(w http.ResponseWriter, r *http.Request) {
	g.problem(w, r, problem{status: http.StatusNotFound, code: codeAppPasswordsOff, msg: "App passwords are not turned on for this site."},
		page{Title: "Not found", Continue: g.pageURL(pathAccount)})
}

// getAppPasswords lists the user's app passwords: JSON for the API, the
// account page (which shows them) for a browser.
func (g *Gateway) getAppPasswords(w http.ResponseWriter, r *http.Request) {
	if !g.cfg.AppPasswords {
		g.appPasswordsOff(w, r)
		return
	}
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	if !wantsJSON(r) {
		http.Redirect(w, r, g.pageURL(pathAccount)+"#app-passwords", http.StatusSeeOther)
		return
	}
	acct, err := g.cfg.Store.Account(s.User)
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"app_passwords": appPasswordRows(acct, g.cfg.Clock.Now())})
}

// newAppPasswordRequest is a POST app-passwords, read and checked.
type newAppPasswordRequest struct {
	name, prefix string
	expires      time.Time
	readOnly     bool
}

// readNewAppPassword checks the fields of a new app password; field names
// the first bad one.
func readNewAppPassword(f form, now time.Time) (req newAppPasswordRequest, field string) {
	req.name = strings.TrimSpace(f.get("name"))
	if req.name == "" || utf8.RuneCountInString(req.name) > maxAppPasswordName || !utf8.ValidString(req.name) ||
		strings.IndexFunc(req.name, func(c rune) bool { return c < 0x20 || c == 0x7f }) >= 0 {
		return req, "name"
	}
	if v := strings.TrimSpace(f.get("expires")); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			// The page's date field: the end of that day, UTC.
			d, derr := time.Parse("2006-01-02", v)
			if derr != nil {
				return req, "expires"
			}
			t = d.Add(24*time.Hour - time.Second)
		}
		if !now.Before(t) {
			return req, "expires"
		}
		req.expires = t
	}
	switch strings.ToLower(f.get("read_only")) {
	case "", "false", "0", "off":
	case "true", "1", "on":
		req.readOnly = true
	default:
		return req, "read_only"
	}
	prefix, ok := CleanPathPrefix(strings.TrimSpace(f.get("path_prefix")))
	if !ok {
		return req, "path_prefix"
	}
	req.prefix = prefix
	return req, ""
}

// postAppPassword makes an app password for the signed-in user, who
// enters their password again (a wrong one counts as a failure).
func (g *Gateway) postAppPassword(w http.ResponseWriter, r *http.Request) {
	if !g.cfg.AppPasswords {
		g.appPasswordsOff(w, r)
		return
	}
	s, st, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	pg := page{Title: "Your account", User: s.User, TwoFactor: st.TOTPEnabled, Continue: g.pageURL(pathAccount)}
	if s.Level < LevelTwoFactor {
		g.problem(w, r, problem{status: http.StatusForbidden, code: codeSecondFactorRequired,
			msg: "Turn on two-factor authentication before you make app passwords."}, pg)
		return
	}
	now := g.cfg.Clock.Now()
	req, field := readNewAppPassword(f, now)
	if field != "" {
		if wantsJSON(r) {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": codeBadRequest, "field": field})
			return
		}
		g.showAccount(w, r, s, st, http.StatusBadRequest, g.backTarget(r, f.get("redirect")), badAppPasswordField[field])
		return
	}
	a, _, ok := g.beginAccountAttempt(w, r, EventAppPasswordChange, s.User, "", pg)
	if !ok {
		return
	}
	pwOK, answered := g.passwordMatches(w, r, a, EventAppPasswordChange, s.User, f.get("password"))
	if answered {
		return
	}
	if !pwOK {
		note := g.failAttempt(r, a, s.User)
		g.audit(r, EventAppPasswordChange, OutcomeFailure, s.User)
		if wantsJSON(r) {
			jsonError(w, http.StatusUnauthorized, codeInvalidCredentials)
			return
		}
		g.showAccount(w, r, s, st, http.StatusUnauthorized, g.backTarget(r, f.get("redirect")),
			"Wrong password: no app password was made."+note)
		return
	}
	g.releaseAttempt(a)
	made, value, err := g.makeAppPassword(s.User, req, now)
	if errors.Is(err, account.ErrTooManyAppPasswords) {
		g.problem(w, r, problem{status: http.StatusConflict, code: codeTooManyAppPasswords,
			msg: "You have as many app passwords as allowed. Revoke one you no longer use, then make the new one."}, pg)
		return
	}
	if err != nil {
		g.internalError(w, r, "make app password", err)
		return
	}
	g.audit(r, EventAppPasswordChange, OutcomeOK, s.User, zap.String("app_password", made.ID), zap.String("action", "made"))
	g.showAppPasswordOnce(w, r, *s, made, value)
}

var badAppPasswordField = map[string]string{
	"name":        "Give the app password a name of up to 64 characters, such as “Phone – DAVx5”.",
	"expires":     "The expiry must be a date in the future, or left empty.",
	"read_only":   "Read-only is either on or off.",
	"path_prefix": "The path must start with / and hold no “..”, “//”, “%”, “?” or “#”, such as /dav.",
}

// makeAppPassword stores a new app password for user and returns it with
// its value, which is nowhere else from now on.
func (g *Gateway) makeAppPassword(user string, req newAppPasswordRequest, now time.Time) (account.AppPassword, string, error) {
	value, err := newAppPasswordValue()
	if err != nil {
		return account.AppPassword{}, "", err
	}
	id, err := newAppPasswordID()
	if err != nil {
		return account.AppPassword{}, "", err
	}
	p := account.AppPassword{ID: id, Name: req.name, Hash: g.appPasswordHash(user, value), Created: now.UTC().Truncate(time.Second),
		Expires: req.expires.UTC(), ReadOnly: req.readOnly, PathPrefix: req.prefix, Credential: g.credential(user)}
	err = account.AddAppPassword(g.cfg.Store, user, p, now)
	return p, value, err
}

// postRevokeAppPassword revokes one of the signed-in user's app passwords.
func (g *Gateway) postRevokeAppPassword(w http.ResponseWriter, r *http.Request) {
	if !g.cfg.AppPasswords {
		g.appPasswordsOff(w, r)
		return
	}
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	id := f.get("id")
	err := account.RevokeAppPassword(g.cfg.Store, s.User, id)
	if errors.Is(err, account.ErrNoAppPassword) {
		g.problem(w, r, problem{status: http.StatusNotFound, code: codeNotFound, msg: "There is no such app password: it may have been revoked already."},
			page{Title: "Not found", Continue: g.pageURL(pathAccount)})
		return
	}
	if err != nil {
		g.internalError(w, r, "revoke app password", err)
		return
	}
	g.audit(r, EventAppPasswordChange, OutcomeOK, s.User, zap.String("app_password", id), zap.String("action", "revoked"))
	g.seeOther(w, r, g.pageURL(pathAccount)+"#app-passwords", map[string]string{"status": "ok"})
}

// appPasswordShownFor is how long the page of a new app password can be reloaded.
const appPasswordShownFor = time.Minute

// shownAppPassword is what the cookie of a new app password carries.
type shownAppPassword struct {
	Session uint64    `json:"s"`
	Made    time.Time `json:"m"`
	User    string    `json:"u"`
	ID      string    `json:"i"`
	Name    string    `json:"n"`
	Value   string    `json:"v"`
}

func (g *Gateway) appPasswordCookieName() string { return g.cfg.CookieName + "_app" }

// showAppPasswordOnce answers the post that made p: API clients get the
// value in the answer, browsers a redirect to the page that shows it.
func (g *Gateway) showAppPasswordOnce(w http.ResponseWriter, r *http.Request, s Session, p account.AppPassword, value string) {
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"id": p.ID, "name": p.Name, "app_password": value})
		return
	}
	raw, err := json.Marshal(shownAppPassword{Session: s.ID, Made: g.cfg.Clock.Now(), User: s.User, ID: p.ID, Name: p.Name, Value: value})
	if err == nil {
		var val string
		if val, err = g.codec.sc.Encode(g.appPasswordCookieName(), raw); err == nil {
			http.SetCookie(w, &http.Cookie{Name: g.appPasswordCookieName(), Value: val, Path: g.cfg.Prefix,
				MaxAge: int(appPasswordShownFor / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
		}
	}
	if err != nil {
		g.internalError(w, r, "set app password cookie", err)
		return
	}
	http.Redirect(w, r, g.pageURL(pathAppPasswordNew), http.StatusSeeOther)
}

// getNewAppPassword shows a new app password to the session that made it,
// for appPasswordShownFor, and only while it is not revoked.
func (g *Gateway) getNewAppPassword(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	shown, ok, err := g.readShownAppPassword(r, s, g.cfg.Clock.Now())
	if err != nil {
		g.internalError(w, r, "read account", err)
		return
	}
	if !ok {
		g.problem(w, r, problem{status: http.StatusGone, code: codeAppPasswordGone,
			msg: "An app password is shown once, right after it is made, and only in the browser that made it. If you did not copy it, revoke it and make a new one."},
			page{Title: "App passwords are shown once", Continue: g.pageURL(pathAccount) + "#app-passwords"})
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"id": shown.ID, "name": shown.Name, "app_password": shown.Value})
		return
	}
	g.render(w, r, http.StatusOK, "app-password-new", page{Title: "New app password", User: s.User,
		Apps: &appPasswordsView{New: &shown}, Site: g.siteName(r), Continue: g.pageURL(pathAccount) + "#app-passwords"})
}

func (g *Gateway) readShownAppPassword(r *http.Request, s *Session, now time.Time) (shownAppPassword, bool, error) {
	ck, err := r.Cookie(g.appPasswordCookieName())
	if err != nil {
		return shownAppPassword{}, false, nil
	}
	var raw []byte
	var c shownAppPassword
	if err := g.codec.sc.Decode(g.appPasswordCookieName(), ck.Value, &raw); err != nil || json.Unmarshal(raw, &c) != nil {
		return shownAppPassword{}, false, nil
	}
	if c.Session != s.ID || c.User != s.User || !now.Before(c.Made.Add(appPasswordShownFor)) || c.Made.After(now.Add(time.Minute)) {
		return shownAppPassword{}, false, nil
	}
	acct, err := g.cfg.Store.Account(s.User)
	if err != nil {
		return shownAppPassword{}, false, err
	}
	for _, p := range acct.AppPasswords {
		if p.ID == c.ID {
			return c, true, nil
		}
	}
	return shownAppPassword{}, false, nil
}

// appPasswordsView is the account page's view of acct's app passwords,
// nil where this block has none.
func (g *Gateway) appPasswordsView(acct account.Account) *appPasswordsView {
	if !g.cfg.AppPasswords {
		return nil
	}
	return &appPasswordsView{List: appPasswordRows(acct, g.cfg.Clock.Now()), Max: account.MaxAppPasswords}
}
