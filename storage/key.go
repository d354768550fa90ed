package storage

import "github.com/totp-auth/totp_auth/storage/secrets"

// The sealing of secrets at rest is shared with the PostgreSQL store and
// lives in package secrets; these names keep this package's code short.

// Key is an AES-256 key for the secrets at rest (see secrets.Key).
type Key = secrets.Key

type (
	keyID   = secrets.KeyID
	keyring = secrets.Keyring
)

const (
	purposeTOTPSecret    = secrets.PurposeTOTPSecret
	purposePendingSecret = secrets.PurposePendingSecret
	purposeSessionHash   = secrets.PurposeSessionHash
	purposeSessionBlock  = secrets.PurposeSessionBlock
	purposeCanary        = secrets.PurposeCanary
)

var (
	errDecrypt = secrets.ErrDecrypt
	canaryText = secrets.CanaryText
)

// ParseKey reads a key written as 64 hexadecimal characters (see
// secrets.ParseKey).
func ParseKey(s string) (Key, error) { return secrets.ParseKey(s) }

// NewKey returns a random key.
func NewKey() (Key, error) { return secrets.NewKey() }

func newKeyring(keys []Key) (*keyring, error) { return secrets.NewKeyring(keys) }

func sealedKeyID(sealed []byte) (keyID, error) { return secrets.SealedKeyID(sealed) }
