package caddymodule

import (
	"fmt"
	"os"
	"testing"

	"github.com/totp-auth/totp_auth/internal/pgtest"
)

func TestMain(m *testing.M) {
	lowCosts = true
	code := m.Run()
	if err := pgtest.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}
