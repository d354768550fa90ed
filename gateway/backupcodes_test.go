package gateway

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestBackupCodes_ShapeAlphabetAndNormalisation(t *testing.T) {
	codes, hashes, err := newBackupCodes(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 || len(hashes) != 10 {
		t.Fatalf("got %d codes, %d hashes; want 10 each", len(codes), len(hashes))
	}
	seen := map[string]bool{}
	for i, c := range codes {
		n, ok := normalizeBackupCode(c)
		if !ok || len(n) != 8 {
			t.Fatalf("code %q is not a valid backup code", c)
		}
		for _, bad := range "01OIL" {
			for _, got := range n {
				if got == bad {
					t.Errorf("code %q holds look-alike %q", c, bad)
				}
			}
		}
		if seen[n] {
			t.Errorf("duplicate code %q", c)
		}
		seen[n] = true
		if cost, err := bcrypt.Cost(hashes[i]); err != nil || cost != bcrypt.MinCost {
			t.Fatalf("hash %d has cost %d (%v), want %d", i, cost, err, bcrypt.MinCost)
		}
		if h, ok := matchBackupCode(hashes, n); !ok || string(h) != string(hashes[i]) {
			t.Errorf("code %q does not match its own hash", c)
		}
		if string(hashes[i]) == n || string(hashes[i]) == c {
			t.Errorf("code stored in the clear")
		}
	}
	for _, in := range []string{"123456", "ABCD-EFG", "ABCD-EFGH1", "ABCD-EF0H"} {
		if _, ok := normalizeBackupCode(in); ok {
			t.Errorf("%q taken for a backup code", in)
		}
	}
	if n, ok := normalizeBackupCode(" abcd efgh "); !ok || n != "ABCDEFGH" {
		t.Errorf("lower case with spaces not normalised: %q %v", n, ok)
	}
}
