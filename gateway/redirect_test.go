package gateway

import (
	"testing"
)

func TestSafeRedirect_AcceptsOnlySameSitePaths(t *testing.T) {
	tests := map[string]string{
		"/":                      "/",
		"/app?x=1&y=2":           "/app?x=1&y=2",
		"/a/b#frag":              "/a/b#frag",
		"/%E2%9C%93":             "/%E2%9C%93",
		"":                       "/",
		"app":                    "/",
		"//evil.example":         "/",
		"///evil.example":        "/",
		"/\\evil.example":        "/",
		"\\\\evil.example":       "/",
		"/app\\..\\x":            "/",
		"https://evil.example/":  "/",
		"javascript:alert(1)":    "/",
		"/\tevil":                "/",
		"/a\r\nSet-Cookie: x=1":  "/",
		"/a\x00":                 "/",
		"/a\x7f":                 "/",
		"/%2F%2Fevil.example":    "/",
		"/%2fevil.example":       "/",
		"/a%2fb":                 "/a%2fb",
		"/%5Cevil.example":       "/",
		" /app":                  "/",
		"/.totp-auth/login?r=//": "/.totp-auth/login?r=//",
		"/..//evil.example":      "/evil.example",
		"/a/./b/../c/?x=/../":    "/a/c/?x=/../",
		"/a//b":                  "/a/b",
		"/%2e%2e//evil.example":  "/%2e%2e/evil.example",
	}
	for in, want := range tests {
		if got := SafeRedirect(in); got != want {
			t.Errorf("SafeRedirect(%q) = %q, want %q", in, got, want)
		}
	}
}
