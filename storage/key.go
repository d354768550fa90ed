package storage

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
	id := k.id()
	return hex.EncodeToString(id[:])
}

// String returns "key " and the key id, never the key.
func (k Key) String() string { return "key " + k.ID() }

// GoString is String, so that %#v does not print the key either.
func (k Key) GoString() string { return k.String() }

// keyID is the binary form of Key.ID, stored in front of every ciphertext.
type keyID [4]byte

func (id keyID) String() string { return hex.EncodeToString(id[:]) }

func (k Key) id() keyID {
	// A domain prefix, so the id is no plain hash of the key that might
	// match a hash computed elsewhere.
	sum := sha256.Sum256(append([]byte("totp_auth key id\x00"), k[:]...))
	var id keyID
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
	sealOverhead = 1 + len(keyID{}) + nonceSize
)

// Purposes of ciphertexts, part of their additional data.
const (
	purposeTOTPSecret    = "totp_secret"
	purposePendingSecret = "pending_secret"
	purposeSessionHash   = "session_hash_key"
	purposeSessionBlock  = "session_block_key"
	purposeCanary        = "canary"
)

// errDecrypt is what every failed decryption reports: nothing about the
// data, which might help an attacker.
var errDecrypt = errors.New("ciphertext does not decrypt: it was changed, or belongs to another user or field")

// keyring holds the AEADs of every key a DB may decrypt with. It is never
// changed once shared: RotateKey replaces it with a larger copy.
type keyring struct {
	aeads map[keyID]cipher.AEAD
	ids   []keyID // in the order configured, for messages
}

func newKeyring(keys []Key) (*keyring, error) {
	r := &keyring{aeads: make(map[keyID]cipher.AEAD, len(keys))}
	for _, k := range keys {
		if err := r.add(k); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// with returns a copy of r that also holds k.
func (r *keyring) with(k Key) (*keyring, error) {
	c := &keyring{aeads: make(map[keyID]cipher.AEAD, len(r.aeads)+1), ids: append([]keyID(nil), r.ids...)}
	for id, a := range r.aeads {
		c.aeads[id] = a
	}
	if _, ok := c.aeads[k.id()]; ok {
		return c, nil
	}
	return c, c.add(k)
}

func (r *keyring) add(k Key) error {
	id := k.id()
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

func (r *keyring) idList() string {
	s := make([]string, len(r.ids))
	for i, id := range r.ids {
		s[i] = id.String()
	}
	return strings.Join(s, ", ")
}

func additionalData(purpose, owner string) []byte {
	return []byte("totp_auth\x00" + purpose + "\x00" + owner)
}

// seal encrypts plaintext under the key with id for purpose and owner.
func (r *keyring) seal(id keyID, purpose, owner string, plaintext []byte) ([]byte, error) {
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

// open decrypts what seal made for purpose and owner. It never returns
// sealed bytes, so the result may outlive the transaction sealed came from.
func (r *keyring) open(purpose, owner string, sealed []byte) ([]byte, error) {
	id, err := sealedKeyID(sealed)
	if err != nil {
		return nil, err
	}
	aead, ok := r.aeads[id]
	if !ok {
		return nil, fmt.Errorf("encrypted under key %s, which is not configured (configured: %s)", id, r.idList())
	}
	plain, err := aead.Open(nil, sealed[1+len(id):sealOverhead], sealed[sealOverhead:], additionalData(purpose, owner))
	if err != nil {
		return nil, errDecrypt
	}
	return plain, nil
}

// sealedKeyID returns the id of the key sealed was encrypted under.
func sealedKeyID(sealed []byte) (keyID, error) {
	var id keyID
	if len(sealed) < sealOverhead || sealed[0] != sealVersion {
		return id, errors.New("ciphertext is malformed or of an unknown version")
	}
	copy(id[:], sealed[1:])
	return id, nil
}
