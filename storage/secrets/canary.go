package secrets

import (
	"bytes"
	"fmt"
	"time"
)

// CheckCanary opens canary, the CanaryText a store sealed under the key it
// last used, and returns that key's id. The errors say what to do: a key
// that is not configured is the usual mistake (the wrong encryption_key);
// a canary that does not open under a configured key means the database
// was changed outside totp_auth.
func (r *Keyring) CheckCanary(canary []byte) (KeyID, error) {
	from, err := SealedKeyID(canary)
	if err != nil {
		return from, fmt.Errorf("read key canary: %w", err)
	}
	if !r.Has(from) {
		return from, fmt.Errorf("the secrets in this database are encrypted under key id %s, but the configured encryption_key has id %s: "+
			"set encryption_key to the key this database was created with (or last rotated to)", from, r.IDList())
	}
	plain, err := r.Open(PurposeCanary, "", canary)
	if err != nil || !bytes.Equal(plain, CanaryText) {
		return from, fmt.Errorf("key canary does not decrypt under key id %s, although the id matches: the database was changed outside totp_auth; restore a backup", from)
	}
	return from, nil
}

// UnixNano is how stores write a time: Unix nanoseconds, and 0 for the
// zero time (which has no Unix nanoseconds of its own).
func UnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromUnixNano reads a time UnixNano wrote.
func FromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
