package gateway

import (
	"strings"
	"testing"
)

// An app password's ID is typed into commands (`caddy totp-auth user
// revoke-app-password alice <id>`): it never begins with "-", which the
// command line would read as a flag, and needs no quoting in a shell.
func TestAppPasswordID_IsSafeOnACommandLine(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		id, err := newAppPasswordID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("ID %q: want 12 lowercase hex digits", id)
		}
		if seen[id] {
			t.Fatalf("ID %q made twice", id)
		}
		seen[id] = true
	}
}
