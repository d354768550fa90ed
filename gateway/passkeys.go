package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/gorilla/securecookie"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Passkeys (SPEC §14): where a request may use them, the WebAuthn
// ceremonies go-webauthn runs for us, and the cookie that carries a
// ceremony from its options to its answer. The flows that use them are in
// passkeyenroll.go, passkeysignin.go and passkeyaccount.go; the rules for
// the stored passkeys in package account (passkey.go).

// passkeySite is where a request may use passkeys: the RP ID ceremonies
// are scoped to and the request's own origin, the only one its answers may
// come from.
type passkeySite struct {
	rpID, origin string
}

// passkeySite reports whether r may use passkeys, and where. Passkeys need
// a secure context: the request came over TLS, or over plain http to the
// host name localhost. The RP ID is pinned: passkey_rp_id, else
// cookie_domain, else the request's host name, and the host must be equal
// to it or under it. The Host header is trusted only that far: an answer
// must carry this very origin in its signed client data, so a Host a
// browser did not send gets no answer that verifies.
func (g *Gateway) passkeySite(r *http.Request) (passkeySite, bool) {
	if !g.cfg.Passkeys {
		return passkeySite{}, false
	}
	host := strings.ToLower(r.Host)
	name := host
	if h, port, err := net.SplitHostPort(host); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return passkeySite{}, false
		}
		name = h
	}
	if !validDomain(name) {
		return passkeySite{}, false
	}
	scheme := "https"
	if r.TLS == nil {
		if name != "localhost" {
			return passkeySite{}, false
		}
		scheme = "http"
	}
	rpID := g.cfg.PasskeyRPID
	if rpID == "" {
		rpID = strings.TrimPrefix(g.cfg.CookieDomain, ".")
	}
	if rpID == "" {
		rpID = name
	}
	if name != rpID && !strings.HasSuffix(name, "."+rpID) {
		return passkeySite{}, false
	}
	return passkeySite{rpID: rpID, origin: scheme + "://" + host}, true
}

// validDomain reports whether s is a DNS name a WebAuthn RP ID may be:
// labels of letters, digits and '-', not an IP address.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 || net.ParseIP(s) != nil {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// relyingParty is go-webauthn configured for one site: its RP ID, and its
// own origin as the only one accepted.
func (g *Gateway) relyingParty(r *http.Request, site passkeySite) (*webauthn.WebAuthn, error) {
	return webauthn.New(&webauthn.Config{
		RPID:                  site.rpID,
		RPDisplayName:         g.issuer(r),
		RPOrigins:             []string{site.origin},
		AttestationPreference: protocol.PreferNoAttestation,
	})
}

// passkeyUser is an account as go-webauthn sees it, with the passkeys
// scoped to one RP ID. The user handle is the canonical name, so that a
// discoverable credential names its user.
type passkeyUser struct {
	acct *account.Account
	rpID string
}

func (u passkeyUser) WebAuthnID() []byte          { return []byte(u.acct.Name) }
func (u passkeyUser) WebAuthnName() string        { return u.acct.Name }
func (u passkeyUser) WebAuthnDisplayName() string { return u.acct.Name }

func (u passkeyUser) WebAuthnCredentials() []webauthn.Credential {
	var out []webauthn.Credential
	for _, p := range u.acct.Passkeys {
		if p.RPID != u.rpID {
			continue
		}
		transports := make([]protocol.AuthenticatorTransport, len(p.Transports))
		for i, t := range p.Transports {
			transports[i] = protocol.AuthenticatorTransport(t)
		}
		out = append(out, webauthn.Credential{
			ID:              p.ID,
			PublicKey:       p.PublicKey,
			AttestationType: p.AttestationType,
			Transport:       transports,
			Flags: webauthn.CredentialFlags{
				UserPresent:    true,
				UserVerified:   p.UserVerified,
				BackupEligible: p.BackupEligible,
				BackupState:    p.BackupState,
			},
			Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
		})
	}
	return out
}

// ceremonyKind says what a ceremony's answer may do.
type ceremonyKind string

const (
	ceremonyRegister     ceremonyKind = "register"
	ceremonySecondFactor ceremonyKind = "2fa"
	ceremonyLogin        ceremonyKind = "login"
	ceremonyDisable      ceremonyKind = "disable"
	// ceremonyBackupCodes is a fresh second factor for a new set of
	// backup codes (POST backup-codes {credential}).
	ceremonyBackupCodes ceremonyKind = "codes"
	// ceremonyPassword is a fresh second factor for changing one's own
	// password (POST password {current, new, credential}).
	ceremonyPassword ceremonyKind = "password"
)

// ceremony is a WebAuthn challenge between its options and its answer, in
// a signed and encrypted cookie. It is bound to the pending sign-in or the
// session that asked (Binding) and expires with the pending sign-in; the
// store remembers it as spent once answered (account.Account.SpendChallenge), so
// no answer is accepted twice, on any instance.
type ceremony struct {
	Kind    ceremonyKind         `json:"k"`
	User    string               `json:"u,omitempty"`
	Binding string               `json:"b,omitempty"`
	Expires time.Time            `json:"e"`
	Data    webauthn.SessionData `json:"s"`
	// Discoverable records that registration asked for a discoverable
	// credential (a block with passkey_login).
	Discoverable bool `json:"d,omitempty"`
}

// ceremonyCookieName is the cookie that carries a ceremony of kind. The
// sign-in ceremonies share one (a page offers at most one of them); each
// ceremony a signed-in user answers on the account page has its own, so
// one page can offer several, each bound to its purpose.
func (g *Gateway) ceremonyCookieName(kind ceremonyKind) string {
	switch kind {
	case ceremonyDisable, ceremonyBackupCodes, ceremonyPassword:
		return g.cfg.CookieName + "_passkey_" + string(kind)
	}
	return g.cfg.CookieName + "_passkey"
}

func newCeremonyCodec(hashKey, blockKey []byte) *securecookie.SecureCookie {
	sc := securecookie.New(hashKey, blockKey)
	sc.SetSerializer(securecookie.JSONEncoder{})
	sc.MaxAge(0) // expiry is the ceremony's own, on the gateway's clock
	sc.MaxLength(4096)
	return sc
}

// pendingBinding binds a ceremony to the pending sign-in of r.
func (g *Gateway) pendingBinding(r *http.Request) string {
	ck, err := r.Cookie(g.pendingCookieName())
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(ck.Value))
	return "pending:" + hex.EncodeToString(sum[:])
}

// sessionBinding binds a ceremony to the session s.
func sessionBinding(s *Session) string {
	return "session:" + strconv.FormatUint(s.ID, 16)
}

func (g *Gateway) setCeremony(w http.ResponseWriter, r *http.Request, c ceremony) error {
	val, err := g.ceremonies.Encode(g.ceremonyCookieName(c.Kind), c)
	if err != nil {
		return fmt.Errorf("encode passkey ceremony: %w", err)
	}
	http.SetCookie(w, g.cookie(r, g.ceremonyCookieName(c.Kind), val, int(PendingTTL/time.Second)))
	return nil
}

// errNoCeremony means the request carries no ceremony of the kind and
// binding asked for that is still in time.
var errNoCeremony = errors.New("no passkey ceremony in progress")

// readCeremony returns the request's ceremony if it is of kind, bound to
// binding and unexpired at now.
func (g *Gateway) readCeremony(r *http.Request, kind ceremonyKind, binding string, now time.Time) (ceremony, error) {
	ck, err := r.Cookie(g.ceremonyCookieName(kind))
	if err != nil {
		return ceremony{}, errNoCeremony
	}
	var c ceremony
	if err := g.ceremonies.Decode(g.ceremonyCookieName(kind), ck.Value, &c); err != nil {
		return ceremony{}, errNoCeremony
	}
	if c.Kind != kind || c.Binding != binding || !now.Before(c.Expires) || c.Data.Challenge == "" {
		return ceremony{}, errNoCeremony
	}
	return c, nil
}

// registrationOptions starts a registration for acct at site, bound to
// binding: the creation options for the page or API client, with the
// ceremony in its cookie. On a block with passkey_login the credential is
// created discoverable; otherwise it need not be, so security keys without
// resident-key slots and password managers work.
func (g *Gateway) registrationOptions(w http.ResponseWriter, r *http.Request, site passkeySite, acct *account.Account, binding string) (*protocol.CredentialCreation, error) {
	rp, err := g.relyingParty(r, site)
	if err != nil {
		return nil, err
	}
	user := passkeyUser{acct: acct, rpID: site.rpID}
	residentKey := protocol.ResidentKeyRequirementDiscouraged
	if g.cfg.PasskeyLogin {
		residentKey = protocol.ResidentKeyRequirementRequired
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range user.WebAuthnCredentials() {
		exclude = append(exclude, c.Descriptor())
	}
	creation, data, err := rp.BeginRegistration(user,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:      residentKey,
			UserVerification: protocol.VerificationPreferred,
		}),
		webauthn.WithResidentKeyRequirement(residentKey),
		webauthn.WithExclusions(exclude),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
	)
	if err != nil {
		return nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	c := ceremony{Kind: ceremonyRegister, User: acct.Name, Binding: binding, Expires: g.cfg.Clock.Now().Add(PendingTTL),
		Data: *data, Discoverable: g.cfg.PasskeyLogin}
	return creation, g.setCeremony(w, r, c)
}

// assertionOptions starts an assertion at site, bound to binding. With
// acct it lists the user's passkeys for this RP ID (a second factor, user
// verification preferred); without, it asks for a discoverable credential
// with user verification required (passkey_login).
func (g *Gateway) assertionOptions(w http.ResponseWriter, r *http.Request, site passkeySite, kind ceremonyKind, acct *account.Account, binding string) (*protocol.CredentialAssertion, error) {
	rp, err := g.relyingParty(r, site)
	if err != nil {
		return nil, err
	}
	var assertion *protocol.CredentialAssertion
	var data *webauthn.SessionData
	c := ceremony{Kind: kind, Binding: binding, Expires: g.cfg.Clock.Now().Add(PendingTTL)}
	if acct == nil {
		assertion, data, err = rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	} else {
		c.User = acct.Name
		assertion, data, err = rp.BeginLogin(passkeyUser{acct: acct, rpID: site.rpID},
			webauthn.WithUserVerification(protocol.VerificationPreferred))
	}
	if err != nil {
		return nil, fmt.Errorf("begin passkey assertion: %w", err)
	}
	c.Data = *data
	return assertion, g.setCeremony(w, r, c)
}

// hasPasskeysFor reports whether acct has a passkey scoped to site.
func hasPasskeysFor(acct *account.Account, site passkeySite) bool {
	for _, p := range acct.Passkeys {
		if p.RPID == site.rpID {
			return true
		}
	}
	return false
}

// passkeyRefusal is why an answer to a ceremony was refused, in the words
// a person reads and the reason the log line gives.
type passkeyRefusal struct {
	reason string
	msg    string
}

func (p *passkeyRefusal) Error() string { return p.reason }

var (
	refusedExpired = &passkeyRefusal{"ceremony_expired", "This passkey request has expired. Try again."}
	refusedOrigin  = &passkeyRefusal{"wrong_site", "This passkey belongs to another site."}
	refusedUV      = &passkeyRefusal{"not_verified", "Your security key did not verify you. Use its PIN or fingerprint, or sign in with your password."}
	refusedClone   = &passkeyRefusal{"counter_not_growing", "This passkey was refused: its signature counter went back, as a copied key's would. Use another passkey or a code, and tell your administrator."}
	refusedReplay  = &passkeyRefusal{"challenge_reused", "This passkey answer was used already. Try again."}
	refusedBusy    = &passkeyRefusal{"too_many_answers", "Too many passkey attempts at once. Wait a few minutes and try again."}
	refusedUnknown = &passkeyRefusal{"unknown_passkey", "This passkey is not registered here. Use another one, or a code."}
	refusedInvalid = &passkeyRefusal{"invalid", "The passkey answer could not be verified. Try again."}
)

// refusalOf names why go-webauthn refused an answer.
func refusalOf(err error) *passkeyRefusal {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		info := strings.ToLower(pe.Details + " " + pe.DevInfo)
		switch {
		case strings.Contains(info, "origin"), strings.Contains(info, "rp hash"), strings.Contains(info, "rpid"), strings.Contains(info, "rp id"):
			return refusedOrigin
		case strings.Contains(info, "user verification") || strings.Contains(info, "verified"):
			return refusedUV
		case strings.Contains(info, "credential id") || strings.Contains(info, "find the credential"):
			return refusedUnknown
		}
	}
	var unknown *protocol.ErrorUnknownCredential
	if errors.As(err, &unknown) {
		return refusedUnknown
	}
	return refusedInvalid
}

// optionsAttr is a ceremony's options as the pages carry them, in the
// WebAuthn Level 3 JSON form, ready before the click: Safari accepts
// navigator.credentials only in the click's own task, so the page may not
// fetch them first.
func optionsAttr(options any) (string, error) {
	b, err := json.Marshal(options)
	return string(b), err
}

// encodeID writes a credential id as the JSON API and the pages name it.
func encodeID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

// decodeID reads an id written by encodeID.
func decodeID(s string) ([]byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return b, err == nil && len(b) > 0
}

// The passkey flows of SPEC §14: registering one (at first sign-in, or
// from the account page after the password), the second factor with one,
// signing in with one alone (passkey_login), listing, renaming and
// removing them.

// passkeysOff answers a passkey request on a block without passkeys, or
// one that cannot use them (no secure context).
func (g *Gateway) passkeysOff(w http.ResponseWriter, r *http.Request) {
	msg := "Passkeys are not turned on for this site."
	if g.cfg.Passkeys {
		msg = "Passkeys work only over https (or on localhost). Use your authenticator app instead."
	}
	g.problem(w, r, problem{status: http.StatusNotFound, code: codePasskeysOff, msg: msg}, page{Title: "Passkeys unavailable"})
}
