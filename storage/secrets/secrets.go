// Package secrets is what every store does to a value it keeps: it seals
// totp_auth's secrets at rest with AES-256-GCM (the key type and its
// parsing, key ids, a keyring that seals under one key and opens under any
// configured one, the canary that tells a wrong key at start), opens, seals
// and withholds an account's secrets (Sealed), and writes times. Every
// store (bbolt, PostgreSQL) goes through it, so a secret copied from one
// into the other opens there, and each store only maps its own records.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Key is an AES-256 key for the secrets at rest. Its String method prints
// only the key id, so a Key that reaches a log line or an error gives
// nothing away.
type Key [32]byte

// howToMakeKey ends every key error, because the fix is always the same.
const howToMakeKey = "make one with `openssl rand -hex 32`"

// ParseKey reads a key written as 64 hexadecimal characters, as
// `openssl rand -hex 32` prints it. Surrounding white space (a key file's
// trailing newline) is ignored. Errors never repeat the key.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	var k Key
	if len(s) != 2*len(k) {
		return Key{}, fmt.Errorf("encryption key has %d characters, want 64 hexadecimal characters (32 bytes); %s", len(s), howToMakeKey)
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return Key{}, fmt.Errorf("encryption key is not hexadecimal: character %d is not 0-9 or a-f; %s", i+1, howToMakeKey)
		}
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		// Unreachable after the checks above; kept so no error goes unchecked.
		return Key{}, fmt.Errorf("encryption key is not hexadecimal; %s", howToMakeKey)
	}
	if k == (Key{}) {
		return Key{}, fmt.Errorf("encryption key is all zeros; %s", howToMakeKey)
	}
	return k, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// NewKey returns a random key.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("generate encryption key: %w", err)
	}
	return k, nil
}

// ID names the key without revealing it: the first 4 bytes of a SHA-256
// of the key, in hex. Every ciphertext carries the id of its key, and error
// messages name keys by it.
func (k Key) ID() string {
	id := k.KeyID()
	return hex.EncodeToString(id[:])
}

// String returns "key " and the key id, never the key.
func (k Key) String() string { return "key " + k.ID() }

// GoString is String, so that %#v does not print the key either.
func (k Key) GoString() string { return k.String() }

// KeyID is the binary form of Key.ID, stored in front of every ciphertext.
type KeyID [4]byte

// String returns the id in hex, as Key.ID does.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// KeyID returns the id of k in binary form.
func (k Key) KeyID() KeyID {
	// A domain prefix, so the id is no plain hash of the key that might
	// match a hash computed elsewhere.
	sum := sha256.Sum256(append([]byte("totp_auth key id\x00"), k[:]...))
	var id KeyID
	copy(id[:], sum[:])
	return id
}

// Ciphertexts are laid out as
//
//	version (1 byte) | key id (4) | nonce (12) | AES-256-GCM sealed data and tag
//
// and sealed with additional data naming their purpose and owner, so a
// ciphertext copied into another user's record, or into another field,
// does not open.
const (
	sealVersion  = 1
	nonceSize    = 12
	sealOverhead = 1 + len(KeyID{}) + nonceSize
)

// Purposes of ciphertexts, part of their additional data.
const (
	PurposeTOTPSecret    = "totp_secret"
	PurposePendingSecret = "pending_secret"
	PurposeSessionHash   = "session_hash_key"
	PurposeSessionBlock  = "session_block_key"
	PurposeCanary        = "canary"
)

// CanaryText is sealed under a store's current key as its canary. Its
// content is no secret; only whether it decrypts matters: a store refuses a
// wrong key at start instead of failing users one by one later.
var CanaryText = []byte("totp_auth canary")

// ErrDecrypt is what every failed decryption reports: nothing about the
// data, which might help an attacker.
var ErrDecrypt = errors.New("ciphertext does not decrypt: it was changed, or belongs to another user or field")

// Keyring holds the AEADs of every key a store may decrypt with. It is
// never changed once shared: a rotation replaces it with a larger copy
// (With).
type Keyring struct {
	aeads map[KeyID]cipher.AEAD
	ids   []KeyID // in the order configured, for messages
}

// NewKeyring returns a keyring holding keys; a key given twice is an error.
func NewKeyring(keys []Key) (*Keyring, error) {
	r := &Keyring{aeads: make(map[KeyID]cipher.AEAD, len(keys))}
	for _, k := range keys {
		if err := r.add(k); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// With returns a copy of r that also holds k.
func (r *Keyring) With(k Key) (*Keyring, error) {
	c := &Keyring{aeads: make(map[KeyID]cipher.AEAD, len(r.aeads)+1), ids: append([]KeyID(nil), r.ids...)}
	for id, a := range r.aeads {
		c.aeads[id] = a
	}
	if _, ok := c.aeads[k.KeyID()]; ok {
		return c, nil
	}
	return c, c.add(k)
}

func (r *Keyring) add(k Key) error {
	id := k.KeyID()
	if _, ok := r.aeads[id]; ok {
		return fmt.Errorf("encryption key id %s is configured twice", id)
	}
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return fmt.Errorf("encryption key %s: %w", id, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("encryption key %s: %w", id, err)
	}
	r.aeads[id] = aead
	r.ids = append(r.ids, id)
	return nil
}

// Has reports whether r holds the key with id.
func (r *Keyring) Has(id KeyID) bool {
	_, ok := r.aeads[id]
	return ok
}

// IDList names the keys of r by id, in the order configured.
func (r *Keyring) IDList() string {
	s := make([]string, len(r.ids))
	for i, id := range r.ids {
		s[i] = id.String()
	}
	return strings.Join(s, ", ")
}

func additionalData(purpose, owner string) []byte {
	return []byte("totp_auth\x00" + purpose + "\x00" + owner)
}

// Seal encrypts plaintext under the key with id for purpose and owner.
func (r *Keyring) Seal(id KeyID, purpose, owner string, plaintext []byte) ([]byte, error) {
	aead, ok := r.aeads[id]
	if !ok {
		return nil, fmt.Errorf("encryption key %s is not configured", id)
	}
	out := make([]byte, sealOverhead, sealOverhead+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	copy(out[1:], id[:])
	nonce := out[1+len(id) : sealOverhead]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("generate nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, additionalData(purpose, owner)), nil
}

// Open decrypts what Seal made for purpose and owner. It never returns
// sealed bytes, so the result may outlive the transaction sealed came from.
func (r *Keyring) Open(purpose, owner string, sealed []byte) ([]byte, error) {
	id, err := SealedKeyID(sealed)
	if err != nil {
		return nil, err
	}
	aead, ok := r.aeads[id]
	if !ok {
		return nil, fmt.Errorf("encrypted under key %s, which is not configured (configured: %s)", id, r.IDList())
	}
	plain, err := aead.Open(nil, sealed[1+len(id):sealOverhead], sealed[sealOverhead:], additionalData(purpose, owner))
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

// SealedKeyID returns the id of the key sealed was encrypted under.
func SealedKeyID(sealed []byte) (KeyID, error) {
	var id KeyID
	if len(sealed) < sealOverhead || sealed[0] != sealVersion {
		return id, errors.New("ciphertext is malformed or of an unknown version")
	}
	copy(id[:], sealed[1:])
	return id, nil
}
