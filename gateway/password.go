package gateway

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// CheckPasswordHash accepts the hashes `caddy hash-password` prints. It is
// the one check of a password hash's form, wherever a hash comes from (a
// Caddyfile line, JSON configuration, the admin API), so each mistake gets
// one message that says how to make a good hash.
func CheckPasswordHash(hash []byte) error {
	s := string(hash)
	switch {
	case strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$"):
		if _, err := bcrypt.Cost(hash); err != nil {
			return fmt.Errorf("the bcrypt hash is malformed (%v), perhaps cut short when copied: make a new one with `caddy hash-password`", err)
		}
		return nil
	case strings.HasPrefix(s, "$argon2id$"):
		if _, _, err := parseArgon2id(s); err != nil {
			return fmt.Errorf("the argon2id hash is malformed (%v), perhaps cut short when copied: make a new one with `caddy hash-password --algorithm argon2id`", err)
		}
		return nil
	}
	return errors.New("the password hash is neither bcrypt nor argon2id: make one with `caddy hash-password`")
}

// comparePassword reports whether password matches hash, in time that
// depends on the hash's parameters only.
func comparePassword(hash []byte, password string) bool {
	if strings.HasPrefix(string(hash), "$argon2id$") {
		p, key, err := parseArgon2id(string(hash))
		if err != nil {
			return false
		}
		got := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(key)))
		return subtle.ConstantTimeCompare(got, key) == 1
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

type argon2Params struct {
	salt    []byte
	time    uint32
	memory  uint32
	threads uint8
}

// parseArgon2id reads the PHC string form:
// $argon2id$v=19$m=<KiB>,t=<iterations>,p=<threads>$<salt>$<key>
func parseArgon2id(s string) (argon2Params, []byte, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return argon2Params{}, nil, errors.New("not a PHC argon2id string")
	}
	if parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return argon2Params{}, nil, fmt.Errorf("unsupported version %q", parts[2])
	}
	var p argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return argon2Params{}, nil, fmt.Errorf("parameters %q: %w", parts[3], err)
	}
	if p.time == 0 || p.threads == 0 || p.memory < 8*uint32(p.threads) {
		return argon2Params{}, nil, fmt.Errorf("parameters %q out of range", parts[3])
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil {
		return argon2Params{}, nil, fmt.Errorf("salt: %w", err)
	}
	key, err := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return argon2Params{}, nil, errors.New("key missing or too short")
	}
	return p, key, nil
}

// decoyHash returns a hash of a random password made with the same
// algorithm and parameters as like, so that checking a password against an
// unknown user costs what checking it against a real one does. Without a
// model it uses bcrypt at cost (Config.DecoyCost).
func decoyHash(like []byte, cost int) ([]byte, error) {
	pw := make([]byte, 24)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	if strings.HasPrefix(string(like), "$argon2id$") {
		p, key, err := parseArgon2id(string(like))
		if err != nil {
			return nil, err
		}
		// A salt of its own: like may be a HashModel, whose salt is zeros.
		salt := make([]byte, len(p.salt))
		if _, err := rand.Read(salt); err != nil {
			return nil, err
		}
		got := argon2.IDKey(pw, salt, p.time, p.memory, p.threads, uint32(len(key)))
		return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(got)), nil
	}
	if c, err := bcrypt.Cost(like); err == nil {
		cost = c
	}
	return bcrypt.GenerateFromPassword(pw, cost)
}
