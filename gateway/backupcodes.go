package gateway

import (
	"crypto/rand"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

const (
	// backupAlphabet leaves out look-alikes: 0/O, 1/I/L.
	backupAlphabet  = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
	backupCodeLen   = 8
	backupCodeCount = 10
)

// newBackupCodes returns a fresh set of codes and their bcrypt hashes at cost.
func newBackupCodes(cost int) (codes []string, hashes [][]byte, err error) {
	for range backupCodeCount {
		b := make([]byte, backupCodeLen)
		for i := range b {
			n, err := randIndex(len(backupAlphabet))
			if err != nil {
				return nil, nil, err
			}
			b[i] = backupAlphabet[n]
		}
		h, err := bcrypt.GenerateFromPassword(b, cost)
		if err != nil {
			return nil, nil, fmt.Errorf("hash backup code: %w", err)
		}
		codes = append(codes, string(b[:4])+"-"+string(b[4:]))
		hashes = append(hashes, h)
	}
	return codes, hashes, nil
}

// randIndex returns a uniform random number in [0, n) for n < 256.
func randIndex(n int) (int, error) {
	limit := 256 - 256%n
	var b [1]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("read random: %w", err)
		}
		if int(b[0]) < limit {
			return int(b[0]) % n, nil
		}
	}
}

// normalizeBackupCode returns the code in stored form and whether the input
// is shaped like a backup code at all: only such input is compared against
// the hashes, so a mistyped TOTP code costs no bcrypt.
func normalizeBackupCode(in string) (string, bool) {
	s := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(in))
	if len(s) != backupCodeLen {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(backupAlphabet, s[i]) < 0 {
			return "", false
		}
	}
	return s, true
}

// matchBackupCode returns the stored hash the code matches.
func matchBackupCode(hashes [][]byte, code string) ([]byte, bool) {
	for _, h := range hashes {
		if bcrypt.CompareHashAndPassword(h, []byte(code)) == nil {
			return h, true
		}
	}
	return nil, false
}

// normalizeTOTPCode strips the spaces apps show in the middle of a code.
func normalizeTOTPCode(in string) (string, bool) {
	s := strings.ReplaceAll(strings.TrimSpace(in), " ", "")
	if len(s) != 6 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	return s, true
}
