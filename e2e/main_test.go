// Package e2e_test runs the real thing: the Caddy binary of cmd/caddy,
// started from a Caddyfile with totp_auth in front of a real upstream, a real
// bbolt file, TOTP codes from oathtool and the QR code read back by zbarimg.
//
// TestMain builds the binary once per `go test` run (not when tests are only
// listed, as `make fuzz` does).
package e2e_test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

var (
	// repoRoot is the module root, where Caddyfile.example lives.
	repoRoot string
	// caddyBin is the binary built from ./cmd/caddy.
	caddyBin string
	// testHash is the bcrypt hash of testPassword, at the lowest cost so
	// that sign-ins in tests are quick.
	testHash string
)

const testPassword = "correct horse battery staple"

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		return m.Run() // listing only: nothing runs, nothing to build
	}
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "totp-auth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	defer stopPostgres()

	bin := filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build ./cmd/caddy:", err)
		return 1
	}
	caddyBin = bin

	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	testHash = string(h)
	return m.Run()
}
