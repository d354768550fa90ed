package memstore

import (
	"testing"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/internal/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) gateway.Store { return New() })
}
