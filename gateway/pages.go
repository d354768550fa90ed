package gateway

import (
	"bytes"
	"encoding/base64"
	"html/template"
	"image/png"
	"net/http"
	"strings"

	"github.com/pquerna/otp"
	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// page is what every built-in page template may show.
type page struct {
	Title, Issuer, Prefix, CSRF string
	// FormToken makes each form post of the page recognisable if the
	// browser sends it again (see formtoken.go).
	FormToken string
	// Error is a refusal; Notice says what happened; Caution warns of
	// what is about to happen or what is lost. Each has its own look.
	Error, Notice, Caution string
	CSS                    template.CSS
	JS                     template.JS

	User, Redirect, Continue string
	// ContinueLabel is the message page's button; empty means "Continue".
	ContinueLabel string
	// Refresh is where the page goes on by itself, at once.
	Refresh string
	// setup
	QR     template.URL
	Secret string
	// SecretRows is the key in rows of four groups of four characters.
	SecretRows []string
	// OTPAuth is the otpauth:// URI of the QR code, which a phone hands to
	// its authenticator app when the link is tapped.
	OTPAuth template.URL
	Expires string
	// Moving is a signed-in user moving to a new authenticator app.
	Moving bool
	// codes, backup, account
	Codes      []string
	Recovery   bool
	Moved      bool
	Site, Date string
	TwoFactor  bool
	CodesLeft  int
	// Back is where the account page leads back to.
	Back string
	// Passkeys (SPEC §14): the options of a ceremony the page offers, in
	// the WebAuthn JSON form (PasskeyCreate registers one, PasskeyGet asks
	// for an assertion); empty where passkeys cannot be used, and the
	// script shows the passkey parts only where WebAuthn runs.
	PasskeyCreate, PasskeyGet string
	// PasskeyName is the name a new passkey is offered under.
	PasskeyName string
	// PasskeysOn is set where this request may use passkeys; Passkeys lists
	// the user's on the account page, HasTOTP says whether TOTP is among
	// the user's second factors.
	PasskeysOn bool
	Passkeys   []passkeyView
	HasTOTP    bool
	// HasPasskeys says whether the user has a passkey: with HasTOTP, what
	// the pages' words name as the user's second factors (see
	// PasskeyOnly). A page that knows neither speaks of TOTP.
	HasPasskeys bool
	// CodesPasskeyGet and PasswordPasskeyGet are the account page's
	// ceremonies for a new set of backup codes and a new password, beside
	// PasskeyGet for turning two-factor authentication off.
	CodesPasskeyGet, PasswordPasskeyGet string
	// Apps is the account page's app passwords; nil without app_passwords.
	Apps *appPasswordsView
	// Required2FA is set where this site requires two-factor
	// authentication, so turning it off only forces a new enrollment.
	Required2FA bool
	// DisableError is a refused attempt to turn two-factor
	// authentication off, shown in its section, which stays open;
	// PasswordError is the same for changing the password.
	DisableError, PasswordError string
	// OwnPassword is set for a user whose password is kept in the
	// database, which the user may change on the account page.
	OwnPassword bool
	// Sessions and Devices are the account page's lists of where the
	// user is signed in; RememberDays is the second factor's "Remember
	// this device for N days" (0: not offered).
	Sessions     []sessionRow
	Devices      []deviceRow
	RememberDays int
}

// setFactors records which second factors acct has, for the pages' words.
func (p *page) setFactors(acct *account.Account) {
	p.HasTOTP, p.HasPasskeys = acct.TOTPSecret != "", len(acct.Passkeys) > 0
}

// PasskeyOnly reports whether the user's only second factor (backup codes
// aside) is a passkey: the pages then say to use the passkey, and never
// ask for a code from an app the user does not have.
func (p page) PasskeyOnly() bool { return p.HasPasskeys && !p.HasTOTP }

// InPlaceOf names what a backup code stands in for: the user's passkey,
// app, or both; app is how the app's code is named.
func (p page) InPlaceOf(app string) string {
	switch {
	case p.PasskeyOnly():
		return "your passkey"
	case p.HasPasskeys:
		return "your passkey or " + app
	}
	return app
}

// keyRows writes a base32 key in groups of four, as people read it out,
// four groups to a row: the page keeps a row on one line, so a narrow
// screen shows two tidy rows rather than a ragged wrap.
func keyRows(secret string) []string {
	var rows []string
	var b strings.Builder
	for i := 0; i < len(secret); i += 4 {
		if i%16 != 0 {
			b.WriteByte(' ')
		}
		b.WriteString(secret[i:min(i+4, len(secret))])
		if i%16 == 12 || i+4 >= len(secret) {
			rows = append(rows, b.String())
			b.Reset()
		}
	}
	return rows
}

// render writes the named page with status. Every page gets the CSRF token
// of the visitor, so every form on it can post.
func (g *Gateway) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.CSRF = g.csrfToken(w, r)
	p.FormToken = newFormToken()
	g.renderPage(w, r, status, name, p)
}

// renderPage writes the named page without a form token, for pages with
// no form that are served where a cookie of the gateway's has no business,
// such as a verify answer shown on another site.
func (g *Gateway) renderPage(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Issuer = g.issuer(r)
	p.Prefix = g.cfg.Prefix
	p.CSS = template.CSS(styleCSS)
	p.JS = template.JS(pagesJS)
	var buf bytes.Buffer
	if err := g.pages.ExecuteTemplate(&buf, name, p); err != nil {
		g.cfg.Logger.Error("totp_auth: render page", zap.String("page", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// qrDataURL renders uri as an inline PNG, so the secret never travels in a
// URL of its own.
func qrDataURL(uri string) (string, error) {
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return "", err
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}
