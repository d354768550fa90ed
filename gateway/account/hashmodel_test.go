package account_test

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/memstore"
)

func TestHashModel_KeepsAlgorithmAndParametersOnly(t *testing.T) {
	b4a, _ := bcrypt.GenerateFromPassword([]byte("a"), 4)
	b4b, _ := bcrypt.GenerateFromPassword([]byte("b"), 4)
	b5, _ := bcrypt.GenerateFromPassword([]byte("a"), 5)
	argon := []byte("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g")
	m := account.HashModel(b4a)
	if m != account.HashModel(b4b) || m == account.HashModel(b5) {
		t.Errorf("models of two cost-4 hashes %q, %q; of cost 5 %q: want the first two equal, the third apart", m, account.HashModel(b4b), account.HashModel(b5))
	}
	if c, err := bcrypt.Cost([]byte(m)); err != nil || c != 4 || len(m) != len(b4a) || m != string(b4a[:7])+strings.Repeat(".", 53) {
		t.Errorf("bcrypt model %q (cost %d, %v): want the hash's cost, length and zeros for the rest", m, c, err)
	}
	am := account.HashModel(argon)
	if am != "$argon2id$v=19$m=65536,t=3,p=4$"+strings.Repeat("A", 22)+"$"+strings.Repeat("A", 43) {
		t.Errorf("argon2id model %q: want the parameters, and zeros of the salt's and key's lengths", am)
	}
	for _, h := range [][]byte{b4a, argon} {
		if m := account.HashModel(h); account.HashModel([]byte(m)) != m {
			t.Errorf("the model of model %q differs", m)
		}
	}
	for _, bad := range []string{"", "plain", "$2a$99$x", "$argon2id$"} {
		if m := account.HashModel([]byte(bad)); m != "" {
			t.Errorf("HashModel(%q) = %q, want none", bad, m)
		}
	}
}

// unlisted is a Store whose accounts must not be listed: a reload must
// cost the same with 10 stored users as with 100,000 (SPEC §6).
type unlisted struct {
	account.Store
	t *testing.T
}

func (s unlisted) Accounts() ([]account.Account, error) {
	s.t.Error("every account was listed")
	return s.Store.Accounts()
}

func TestForgetConfigUsers_ReadsTheMarkedNamesNotEveryAccount(t *testing.T) {
	mem := memstore.New()
	s := unlisted{mem, t}
	mem.SetPassword("bob", []byte("$2a$04$"+strings.Repeat(".", 53)))
	if err := account.MarkConfigUsers(s, map[string]bool{"carol": true, "dave": true}); err != nil {
		t.Fatal(err)
	}
	ended, err := account.ForgetConfigUsers(s, map[string]bool{"carol": true})
	if err != nil || len(ended) != 1 || ended[0] != "dave" {
		t.Fatalf("ForgetConfigUsers = %q, %v; want dave signed out", ended, err)
	}
	if names, err := s.ConfigUsers(); err != nil || len(names) != 1 || names[0] != "carol" {
		t.Errorf("marked after the reload: %q, %v; want carol", names, err)
	}
}
