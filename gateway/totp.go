package gateway

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters every authenticator app understands (RFC 6238 defaults).
const (
	totpPeriod = 30
	totpDigits = otp.DigitsSix
)

var totpOpts = hotp.ValidateOpts{Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}

// totpStep is the RFC 6238 time step of t.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// matchTOTP returns the time step within ±drift of now whose code equals
// code. It compares every candidate in constant time, so the answer's
// timing says nothing about which step matched. The library does the
// HOTP math; what it lacks is the matched step, which replay protection
// (RFC 6238 §5.2) needs.
func matchTOTP(secret, code string, now time.Time, drift int) (step int64, ok bool) {
	if len(code) != totpDigits.Length() {
		return 0, false
	}
	center := totpStep(now)
	for s := center - int64(drift); s <= center+int64(drift); s++ {
		if s < 0 {
			continue
		}
		want, err := hotpCode(secret, s)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && !ok {
			step, ok = s, true
		}
	}
	return step, ok
}

// newTOTPSecret returns 160 random bits in unpadded base32, the size RFC
// 4226 recommends for HMAC-SHA1.
func newTOTPSecret() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random secret: %w", err)
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b), nil
}

// otpauthURI is the Key URI Format understood by Google Authenticator and
// the rest, as the library writes it: the issuer both as label prefix and
// as parameter, spaces as %20 (a + shows literally in some apps).
func otpauthURI(issuer, account, secret string) (string, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		return "", fmt.Errorf("decode totp secret: %w", err)
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Secret: raw,
		Period: totpPeriod, Digits: totpDigits, Algorithm: totpOpts.Algorithm,
	})
	if err != nil {
		return "", fmt.Errorf("build otpauth URI: %w", err)
	}
	return key.URL(), nil
}

// hotpCode is the code for one time step.
func hotpCode(secret string, step int64) (string, error) {
	return hotp.GenerateCodeCustom(secret, uint64(step), totpOpts)
}
