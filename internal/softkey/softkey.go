// Package softkey is a small software WebAuthn authenticator for tests: it
// answers the creation and request options a relying party sends with the
// responses a browser would post, signed with ECDSA P-256 keys it keeps in
// memory, so that tests drive real ceremonies of go-webauthn without a
// browser. It is no security device: its keys live in the test process.
package softkey

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Flags of the authenticator data (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

// Authenticator holds credentials and answers ceremonies. The zero value
// is a platform authenticator that verifies its user, counts signatures
// and attests with "none".
type Authenticator struct {
	// NoUserVerification makes it answer without the UV flag, as a
	// security key without a PIN does.
	NoUserVerification bool
	// BackupEligible and BackedUp set the BE and BS flags, as a synced
	// passkey (iCloud Keychain, Google Password Manager) does.
	BackupEligible, BackedUp bool
	// NoCounter keeps every signature counter at 0, as synced passkeys do.
	NoCounter bool
	// Packed makes registrations carry a packed self-attestation instead
	// of none.
	Packed bool

	mu    sync.Mutex
	creds []*Credential
}

// Credential is one key pair of an Authenticator.
type Credential struct {
	ID         []byte
	Key        *ecdsa.PrivateKey
	RPID       string
	UserHandle []byte
	// Counter is the signature counter the next assertion increments.
	Counter uint32
}

// Clone returns a copy of c (the same key) with its counter set to
// counter, as a cloned authenticator would hold it.
func (c *Credential) Clone(counter uint32) *Credential {
	cp := *c
	cp.Counter = counter
	return &cp
}

// Add puts c into the authenticator, e.g. a clone of another's.
func (a *Authenticator) Add(c *Credential) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.creds = append(a.creds, c)
}

// Credentials returns the authenticator's credentials.
func (a *Authenticator) Credentials() []*Credential {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*Credential(nil), a.creds...)
}

// Options are the parts of creation or request options an authenticator
// reads, in the WebAuthn JSON form; both {"publicKey": {...}} and the
// inner object are accepted.
type options struct {
	Challenge string `json:"challenge"`
	RP        struct {
		ID string `json:"id"`
	} `json:"rp"`
	RPID string `json:"rpId"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	AllowCredentials []struct {
		ID string `json:"id"`
	} `json:"allowCredentials"`
}

func parseOptions(raw []byte) (options, error) {
	var wrapped struct {
		PublicKey *json.RawMessage `json:"publicKey"`
	}
	if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.PublicKey != nil {
		raw = *wrapped.PublicKey
	}
	var o options
	if err := json.Unmarshal(raw, &o); err != nil {
		return o, fmt.Errorf("read options: %w", err)
	}
	if o.Challenge == "" {
		return o, errors.New("options carry no challenge")
	}
	return o, nil
}

// Ceremony says where the browser runs a ceremony: the origin it writes
// into the client data, and (when not empty) an RP ID that overrides the
// options', to imitate a page of another site.
type Ceremony struct {
	Origin string
	RPID   string
}

var b64 = base64.RawURLEncoding

// Create answers creation options: a new credential, and the
// registration response JSON (credential.toJSON()) to post.
func (a *Authenticator) Create(at Ceremony, optionsJSON []byte) ([]byte, *Credential, error) {
	o, err := parseOptions(optionsJSON)
	if err != nil {
		return nil, nil, err
	}
	rpID := o.RP.ID
	if at.RPID != "" {
		rpID = at.RPID
	}
	user, err := b64.DecodeString(o.User.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("read user id: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, nil, err
	}
	c := &Credential{ID: id, Key: key, RPID: rpID, UserHandle: user}
	clientData := clientDataJSON("webauthn.create", o.Challenge, at.Origin)
	cose, err := coseKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	auth := a.authData(rpID, flagAT, 0)
	auth = append(auth, make([]byte, 16)...) // AAGUID: none
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(id)))
	auth = append(auth, id...)
	auth = append(auth, cose...)
	att := map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": auth}
	if a.Packed {
		sig, err := sign(key, auth, clientData)
		if err != nil {
			return nil, nil, err
		}
		att = map[string]any{"fmt": "packed", "attStmt": map[string]any{"alg": -7, "sig": sig}, "authData": auth}
	}
	enc, err := cbor.CTAP2EncOptions().EncMode()
	if err != nil {
		return nil, nil, err
	}
	attObj, err := enc.Marshal(att)
	if err != nil {
		return nil, nil, err
	}
	a.Add(c)
	resp, err := json.Marshal(map[string]any{
		"id": b64.EncodeToString(id), "rawId": b64.EncodeToString(id), "type": "public-key",
		"authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(clientData),
			"attestationObject": b64.EncodeToString(attObj),
			"transports":        []string{"internal"},
		},
		"clientExtensionResults": map[string]any{},
	})
	return resp, c, err
}

// Get answers request options with an assertion of the first credential
// that the options allow and that is scoped to their RP ID, or to at.RPID
// when set (a discoverable sign-in lists none: any of the RP's will do).
func (a *Authenticator) Get(at Ceremony, optionsJSON []byte) ([]byte, error) {
	o, err := parseOptions(optionsJSON)
	if err != nil {
		return nil, err
	}
	rpID := o.RPID
	if at.RPID != "" {
		rpID = at.RPID
	}
	c := a.find(rpID, o.AllowCredentials)
	if c == nil {
		return nil, errors.New("no credential for this request")
	}
	return a.Assert(c, at, rpID, o.Challenge)
}

func (a *Authenticator) find(rpID string, allow []struct {
	ID string `json:"id"`
}) *Credential {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.creds {
		if c.RPID != rpID {
			continue
		}
		if len(allow) == 0 {
			return c
		}
		for _, d := range allow {
			if id, err := b64.DecodeString(d.ID); err == nil && bytes.Equal(id, c.ID) {
				return c
			}
		}
	}
	return nil
}

// Assert signs an assertion of c for challenge (base64url) under rpID, as
// made at at.Origin.
func (a *Authenticator) Assert(c *Credential, at Ceremony, rpID, challenge string) ([]byte, error) {
	a.mu.Lock()
	if !a.NoCounter {
		c.Counter++
	}
	counter := c.Counter
	a.mu.Unlock()
	clientData := clientDataJSON("webauthn.get", challenge, at.Origin)
	auth := a.authData(rpID, 0, counter)
	sig, err := sign(c.Key, auth, clientData)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(c.ID), "rawId": b64.EncodeToString(c.ID), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(clientData),
			"authenticatorData": b64.EncodeToString(auth),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(c.UserHandle),
		},
		"clientExtensionResults": map[string]any{},
	})
}

// authData is the authenticator data's fixed part: the RP ID hash, the
// flags (extra and the authenticator's own) and the counter.
func (a *Authenticator) authData(rpID string, extra byte, counter uint32) []byte {
	h := sha256.Sum256([]byte(rpID))
	flags := flagUP | extra
	if !a.NoUserVerification {
		flags |= flagUV
	}
	if a.BackupEligible {
		flags |= flagBE
	}
	if a.BackedUp {
		flags |= flagBS
	}
	out := append(h[:], flags)
	return binary.BigEndian.AppendUint32(out, counter)
}

func clientDataJSON(typ, challenge, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return b
}

// sign is the signature over authenticator data and the client data's
// hash that both attestation and assertion carry.
func sign(key *ecdsa.PrivateKey, auth, clientData []byte) ([]byte, error) {
	h := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(append([]byte(nil), auth...), h[:]...))
	return ecdsa.SignASN1(rand.Reader, key, digest[:])
}

// coseKey encodes an EC2 P-256 public key for ES256 (RFC 9053).
func coseKey(pub *ecdsa.PublicKey) ([]byte, error) {
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, err
	}
	enc, err := cbor.CTAP2EncOptions().EncMode()
	if err != nil {
		return nil, err
	}
	return enc.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:65]})
}
