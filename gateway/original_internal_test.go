package gateway

import (
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The cache of accepted verify headers holds only keys of a bounded size:
// a header readOriginal does not read (X-Original-Method without
// X-Original-URL, sent by the client through forward_auth) cannot make
// each entry as large as the server lets headers be.
func TestOriginalCache_KeysAreBounded(t *testing.T) {
	g, err := New(Config{
		Users:          map[string][]byte{},
		Store:          counterOnlyStore{},
		PortalDomains:  []string{"example.com"},
		DecoyCost:      bcrypt.MinCost,
		SessionHashKey: []byte(strings.Repeat("h", 32)), SessionBlockKey: []byte(strings.Repeat("b", 32)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		r := httptest.NewRequest("GET", "/.totp-auth/verify", nil)
		r.Header.Set("X-Forwarded-Method", "GET")
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("X-Forwarded-Host", "app.example.com")
		r.Header.Set("X-Forwarded-Uri", "/wiki")
		r.Header.Set("X-Original-Method", strings.Repeat("A", 64<<10+i))
		if _, err := g.readOriginal(r, forwardedHeaders); err != nil {
			t.Fatalf("readOriginal: %v", err)
		}
	}
	total := 0
	for k := range g.originals.m {
		total += len(k)
	}
	if total > 8*maxOriginalKey {
		t.Fatalf("8 answers hold %d bytes of keys, want at most %d", total, 8*maxOriginalKey)
	}
}
