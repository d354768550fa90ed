package gateway

import (
	"strings"
	"testing"
	"time"
)

// RFC 6238 Appendix B, SHA1 rows, truncated to the 6 digits apps use
// (the 8-digit values mod 10^6).
func TestTOTP_RFC6238AppendixBVectors(t *testing.T) {
	const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" // "12345678901234567890"
	tests := []struct {
		unix int64
		code string
		step int64
	}{
		{59, "287082", 1},
		{1111111109, "081804", 0x23523EC},
		{1111111111, "050471", 0x23523ED},
		{1234567890, "005924", 0x273EF07},
		{2000000000, "279037", 0x3F940AA},
		{20000000000, "353130", 0x27BC86AA},
	}
	for _, tt := range tests {
		step, ok := matchTOTP(secret, tt.code, time.Unix(tt.unix, 0), 0)
		if !ok || step != tt.step {
			t.Errorf("T=%d code %s: got step %d ok=%v, want step %d", tt.unix, tt.code, step, ok, tt.step)
		}
	}
}

func TestTOTP_DriftAcceptsNeighbourStepsOnly(t *testing.T) {
	const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	now := time.Unix(1111111111, 0)
	for offset, want := range map[int64]bool{-2: false, -1: true, 0: true, 1: true, 2: false} {
		at := now.Add(time.Duration(offset*30) * time.Second)
		code, err := codeAt(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		step, ok := matchTOTP(secret, code, now, 1)
		if ok != want {
			t.Errorf("offset %d steps: ok=%v, want %v", offset, ok, want)
		}
		if ok && step != totpStep(at) {
			t.Errorf("offset %d steps: matched step %d, want %d", offset, step, totpStep(at))
		}
	}
}

func TestTOTP_RejectsMalformedCodes(t *testing.T) {
	const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	for _, code := range []string{"", "28708", "2870822", "abcdef", "28708 "} {
		if _, ok := matchTOTP(secret, code, time.Unix(59, 0), 1); ok {
			t.Errorf("code %q accepted", code)
		}
	}
}

func codeAt(secret string, t time.Time) (string, error) {
	return hotpCode(secret, totpStep(t))
}

func TestOtpauthURI_EncodesSpacesAsPercent20(t *testing.T) {
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	uri, err := otpauthURI("Home Lab", "alice", secret)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(uri, "otpauth://totp/Home%20Lab:alice?") || !strings.Contains(uri, "issuer=Home%20Lab") || strings.Contains(uri, "+") {
		t.Errorf("otpauthURI = %q, want otpauth://totp/Home%%20Lab:alice?…&issuer=Home%%20Lab and no +", uri)
	}
	for _, want := range []string{"secret=" + secret, "algorithm=SHA1", "digits=6", "period=30"} {
		if !strings.Contains(uri, want) {
			t.Errorf("otpauthURI = %q, want %s", uri, want)
		}
	}
}
