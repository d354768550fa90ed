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
			"go build -o caddy ./cmd/caddy",
		},
		"docs/install.md": {
			"--with " + module + "/caddymodule \\\n",
			"--replace " + module + "=./totp_auth",
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

// The image is built from the checkout, so .dockerignore keeps out what a
// checkout that has been used accumulates: the history, a built caddy, the
// demo's database and key, benchmark output.
func TestDeploy_DockerignoreKeepsBuildLeftoversOutOfTheImage(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatalf("no .dockerignore beside deploy/Dockerfile's build context: %v", err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.TrimPrefix(line, "/"))
		}
	}
	// ignored reports whether a pattern names path or one of its parents,
	// as Docker reads them (** spans directories).
	ignored := func(path string) bool {
		for _, p := range patterns {
			for dir := path; dir != "." && dir != "/"; dir = filepath.Dir(dir) {
				if ok, _ := filepath.Match(p, dir); ok {
					return true
				}
				if rest, found := strings.CutPrefix(p, "**/"); found {
					if ok, _ := filepath.Match(rest, filepath.Base(dir)); ok {
						return true
					}
				}
			}
		}
		return false
	}
	for _, path := range []string{".git", ".git/objects/pack", "caddy", ".demo/totp.db", ".demo/caddy/pki", "bench/out/run-1.txt", "totp.db", ".demo/totp_auth/totp.db.key"} {
		if !ignored(path) {
			t.Errorf(".dockerignore lets %s into the image build", path)
		}
	}
	for _, path := range []string{"go.mod", "go.sum", "cmd/caddy/main.go", "caddymodule/module.go", "gateway/assets", "deploy/Caddyfile"} {
		if ignored(path) {
			t.Errorf(".dockerignore keeps %s, which the build needs, out of the image build", path)
		}
	}
}
