package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"golang.org/x/crypto/bcrypt"
)

func TestDecoyHash_CostsWhatTheMostExpensiveUserCosts(t *testing.T) {
	cheap, _ := bcrypt.GenerateFromPassword([]byte("a"), 4)
	dear, _ := bcrypt.GenerateFromPassword([]byte("b"), 7)
	argon := []byte("$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43))
	tests := []struct {
		name  string
		users map[string][]byte
		check func(decoy []byte) bool
	}{
		{"highest bcrypt cost wins", map[string][]byte{"a": cheap, "b": dear}, func(d []byte) bool { c, err := bcrypt.Cost(d); return err == nil && c == 7 }},
		{"argon2id parameters are copied", map[string][]byte{"a": argon}, func(d []byte) bool { return strings.HasPrefix(string(d), "$argon2id$v=19$m=4096,t=3,p=1$") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &Gateway{cfg: Config{Users: tt.users}, decoyDone: make(chan struct{})}
			g.cfg.setDefaults()
			d := g.decoyHash()
			if !tt.check(d) {
				t.Fatalf("decoy %q does not match the users' hashing cost", d)
			}
			if err := CheckPasswordHash(d); err != nil {
				t.Fatalf("decoy is not a valid hash: %v", err)
			}
		})
	}
}

func TestComparePassword_BcryptAndArgon2id(t *testing.T) {
	b, _ := bcrypt.GenerateFromPassword([]byte("pw"), 4)
	// Made with `caddy hash-password --algorithm argon2id --plaintext pw`'s
	// format; decoyHash builds the same PHC string from the parameters.
	model := []byte("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43))
	a, err := decoyHash(model)
	if err != nil {
		t.Fatal(err)
	}
	if !comparePassword(b, "pw") || comparePassword(b, "PW") {
		t.Error("bcrypt comparison wrong")
	}
	if comparePassword(a, "pw") {
		t.Error("argon2id decoy matched a password it was not made from")
	}
	for _, bad := range []string{"", "plain", "$2a$99$x", "$argon2id$v=18$m=1,t=1,p=1$x$y", "$argon2id$v=19$m=0,t=0,p=0$c2FsdA$AAAA"} {
		if CheckPasswordHash([]byte(bad)) == nil {
			t.Errorf("hash %q accepted", bad)
		}
	}
}

// storedAccounts is a Store that only lists accounts.
type storedAccounts struct {
	account.Store
	accounts []account.Account
}

func (s storedAccounts) Accounts() ([]account.Account, error) { return s.accounts, nil }

func TestDecoyHash_FollowsTheCostliestStoredHashToo(t *testing.T) {
	cheap, _ := bcrypt.GenerateFromPassword([]byte("a"), 4)
	dear, _ := bcrypt.GenerateFromPassword([]byte("b"), 7)
	store := storedAccounts{accounts: []account.Account{{Name: "bob", PasswordHash: cheap}, {Name: "carol", PasswordHash: dear}, {Name: "dave"}}}
	g := &Gateway{cfg: Config{Users: map[string][]byte{"alice": cheap}, Store: store}, decoyDone: make(chan struct{})}
	g.cfg.setDefaults()
	if c, err := bcrypt.Cost(g.decoyHash()); err != nil || c != 7 {
		t.Fatalf("decoy cost %d (%v), want 7: the costliest stored hash", c, err)
	}
}

func TestDecoyHash_ACostlierStoredHashCheckedLaterRaisesIt(t *testing.T) {
	cheap, _ := bcrypt.GenerateFromPassword([]byte("a"), 4)
	dear, _ := bcrypt.GenerateFromPassword([]byte("b"), 6)
	g := &Gateway{cfg: Config{Users: map[string][]byte{"alice": cheap}}, decoyDone: make(chan struct{})}
	g.cfg.setDefaults()
	if c, _ := bcrypt.Cost(g.decoyHash()); c != 4 {
		t.Fatalf("decoy cost %d, want 4", c)
	}
	g.noteHash(dear)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, _ := bcrypt.Cost(g.decoyHash()); c == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("decoy did not follow a costlier stored hash")
		}
		time.Sleep(5 * time.Millisecond)
	}
	g.noteHash(cheap)
	time.Sleep(20 * time.Millisecond)
	if c, _ := bcrypt.Cost(g.decoyHash()); c != 6 {
		t.Fatalf("a cheaper hash lowered the decoy to cost %d", c)
	}
}

func TestHashWork_OrdersAlgorithmsAndParameters(t *testing.T) {
	b10, _ := bcrypt.GenerateFromPassword([]byte("a"), 10)
	b14 := []byte("$2a$14$" + strings.Repeat("a", 53))
	small := []byte("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43))
	big := []byte("$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43))
	if !(hashWork(small) < hashWork(b10) && hashWork(b10) < hashWork(big) && hashWork(big) < hashWork(b14)) {
		t.Fatalf("work: argon2 1 MiB %g, bcrypt 10 %g, argon2 64 MiB×3 %g, bcrypt 14 %g", hashWork(small), hashWork(b10), hashWork(big), hashWork(b14))
	}
}

func TestBackupCodeCost_DefaultIsTenAndTheSettingIsUsed(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.BackupCodeCost != 10 {
		t.Fatalf("default backup code cost = %d, want 10", c.BackupCodeCost)
	}
	_, hashes, err := newBackupCodes(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost(hashes[0]); err != nil || cost != bcrypt.MinCost {
		t.Fatalf("backup code hash cost = %d (%v), want %d", cost, err, bcrypt.MinCost)
	}
	c.BackupCodeCost = 3
	c.Store = struct{ account.Store }{}
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "backup code cost 3") {
		t.Fatalf("cost 3 accepted: %v", err)
	}
}
