package memstore

import (
	"testing"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) account.Store { return New() })
}
