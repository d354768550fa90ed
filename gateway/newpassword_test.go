package gateway_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/totp-auth/totp_auth/gateway"
)

func TestNewPassword_RefusesWhatIsEasyToGuessSayingWhy(t *testing.T) {
	for _, tt := range []struct {
		password, reason string
	}{
		{"", "empty"},
		{"short1", "shorter than 8 characters"},
		{"ÄÖÜäöü7", "shorter than 8 characters"},
		{strings.Repeat("x", 73), "longer than 72 bytes"},
		{"alice.smith", "the user name"},
		{"password", "most common passwords"},
		{"Password1", "most common passwords"},
		{"QWERTYUIOP", "most common passwords"},
		{"iloveyou", "most common passwords"},
		{"trustno1", "most common passwords"},
	} {
		err := gateway.CheckNewPassword("Alice.Smith", tt.password)
		var weak *gateway.WeakPassword
		if !errors.As(err, &weak) || !strings.Contains(weak.Reason, tt.reason) {
			t.Errorf("password %q: %v, want a refusal naming %q", tt.password, err, tt.reason)
		}
	}
	for _, ok := range []string{"correct horse battery", "Ärger über Ölpreis", "tulip-anvil-9-sofa"} {
		if err := gateway.CheckNewPassword("alice", ok); err != nil {
			t.Errorf("password %q refused: %v", ok, err)
		}
	}
}
