package account

import (
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// HashModel is a password hash with its salt and digest zeroed: its
// algorithm and parameters, which are all that a decoy of the same cost
// needs (SPEC §4 rule 24), and nothing of the password. Stores keep how
// many accounts have each model (see Store.PasswordModels). It is "" for
// a hash of no form the gateway checks.
func HashModel(hash []byte) string {
	s := string(hash)
	if strings.HasPrefix(s, "$argon2id$") {
		// $argon2id$v=19$m=65536,t=3,p=4$<salt>$<key>, base64 without
		// padding, where a run of 'A' is zero bytes of the same length.
		key := strings.LastIndexByte(s, '$')
		salt := strings.LastIndexByte(s[:key], '$')
		if salt <= len("$argon2id$") {
			return ""
		}
		return s[:salt+1] + strings.Repeat("A", key-salt-1) + "$" + strings.Repeat("A", len(s)-key-1)
	}
	if _, err := bcrypt.Cost(hash); err != nil {
		return ""
	}
	// $2a$14$<salt and digest>, in bcrypt's base64, where '.' is zero.
	params := strings.IndexByte(s[1:], '$') + 1
	params += strings.IndexByte(s[params+1:], '$') + 1
	return s[:params+1] + strings.Repeat(".", len(s)-params-1)
}
