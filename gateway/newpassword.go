package gateway

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// The rules a new password must meet, written once for every way to set
// one: `caddy totp-auth user add` and `user passwd`, and a user changing
// their own password on the account page.

// MinPasswordLength is the fewest characters a new password may have.
const MinPasswordLength = 8

// maxPasswordBytes is what bcrypt uses of a password; more is ignored.
const maxPasswordBytes = 72

// commonPasswordsText is a short list of the passwords attackers try
// first, one a line, lower case; lines starting with '#' are comments.
//
//go:embed assets/common-passwords.txt
var commonPasswordsText string

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 3000)
	for line := range strings.SplitSeq(commonPasswordsText, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			m[line] = struct{}{}
		}
	}
	return m
})

// WeakPassword is a new password refused, with the reason a person reads.
type WeakPassword struct {
	// Reason says what is wrong with the password and what to choose
	// instead.
	Reason string
}

func (e *WeakPassword) Error() string { return e.Reason }

// CheckNewPassword returns nil if password may become user's password,
// and a *WeakPassword saying why not otherwise: empty, shorter than
// MinPasswordLength characters, longer than bcrypt uses, the user name
// itself, or one of the most common passwords (in any case).
func CheckNewPassword(user, password string) error {
	weak := func(format string, args ...any) error { return &WeakPassword{Reason: fmt.Sprintf(format, args...)} }
	lower := strings.ToLower(password)
	_, common := commonPasswords()[lower]
	switch {
	case password == "":
		return weak("the password is empty")
	case utf8.RuneCountInString(password) < MinPasswordLength:
		return weak("the password is shorter than %d characters, short enough to guess: choose a longer one "+
			"(a few unrelated words are easy to type and hard to guess)", MinPasswordLength)
	case len(password) > maxPasswordBytes:
		return weak("the password is longer than %d bytes, more than bcrypt uses: choose a shorter one", maxPasswordBytes)
	case lower == CanonicalUser(user):
		return weak("the password is the user name: choose one that is not")
	case common:
		return weak("the password is one of the most common passwords, which attackers try first: choose another " +
			"(a few unrelated words are easy to type and hard to guess)")
	}
	return nil
}
