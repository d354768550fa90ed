package gateway

import (
	"errors"
	"strings"
)

func checkPasswordHash(hash []byte) error {
	s := string(hash)
	if strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$") || strings.HasPrefix(s, "$argon2id$") {
		return nil
	}
	return errors.New("password hash is neither bcrypt nor argon2id: make one with `caddy hash-password`")
}
