package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The deployment files of the README's quick start: the Dockerfile builds
// the plugin of this very module, and the compose site's Caddyfile is one
// Caddy accepts. Docker itself is not needed for these checks.

func TestDeploy_DockerfileAndREADMEBuildThisModulesPlugin(t *testing.T) {
	t.Parallel()
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var module string
	for _, line := range strings.Split(string(gomod), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			module = strings.Trim(strings.TrimSpace(m), `"`)
		}
	}
	if module == "" {
		t.Fatal("go.mod names no module")
	}
	for file, wants := range map[string][]string{
		"deploy/Dockerfile": {
			"FROM caddy:2.11-builder AS builder",
			"--with " + module + "/caddymodule",
			"--replace " + module + "=/src/totp_auth",
			"COPY --from=builder /usr/bin/caddy /usr/bin/caddy",
		},
		"README.md": {
			"xcaddy build --with " + module + "/caddymodule\n",
			"--with " + module + "/caddymodule \\\n",
			"--replace " + module + "=./totp_auth",
			"go build -o caddy ./cmd/caddy",
		},
	} {
		b, err := os.ReadFile(filepath.Join(repoRoot, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range wants {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q", file, want)
			}
		}
	}
}

func TestDeploy_ComposeCaddyfileIsValid(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	out, err := c.run("validate", "--config", filepath.Join(repoRoot, "deploy", "Caddyfile"), "--adapter", "caddyfile")
	if err != nil {
		t.Fatalf("caddy validate deploy/Caddyfile: %v\n%s", err, out)
	}
}
