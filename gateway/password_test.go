package gateway

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/memstore"
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
			g := &Gateway{cfg: Config{Users: tt.users}, decoy: newDecoy()}
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
	a, err := decoyHash(model, DefaultDecoyCost)
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

// unlisted is a Store whose accounts must not be listed: what start-up
// and reload must never do, since it costs as much as the user base is
// large (SPEC §6).
type unlisted struct {
	account.Store
	t *testing.T
}

func (s unlisted) Accounts() ([]account.Account, error) {
	s.t.Error("the decoy listed every account")
	return s.Store.Accounts()
}

func TestDecoyHash_FollowsTheCostliestStoredHashToo(t *testing.T) {
	cheap, _ := bcrypt.GenerateFromPassword([]byte("a"), 4)
	dear, _ := bcrypt.GenerateFromPassword([]byte("b"), 7)
	store := memstore.New()
	store.SetPassword("bob", cheap)
	store.SetPassword("carol", dear)
	if _, err := account.BumpGeneration(store, "dave"); err != nil {
		t.Fatal(err)
	}
	g := &Gateway{cfg: Config{Users: map[string][]byte{"alice": cheap}, Store: unlisted{store, t}}, decoy: newDecoy()}
	g.cfg.setDefaults()
	d := g.decoyHash()
	if c, err := bcrypt.Cost(d); err != nil || c != 7 {
		t.Fatalf("decoy cost %d (%v), want 7: the costliest stored hash", c, err)
	}
	if strings.Contains(string(d), string(dear[7:29])) {
		t.Error("the decoy took carol's salt")
	}
}

func TestDecoyHash_Argon2idFromAStoredModelHasASaltOfItsOwn(t *testing.T) {
	argon := []byte("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("B", 43))
	store := memstore.New()
	store.SetPassword("bob", argon)
	g := &Gateway{cfg: Config{Store: unlisted{store, t}}, decoy: newDecoy()}
	g.cfg.setDefaults()
	d := string(g.decoyHash())
	parts := strings.Split(d, "$")
	if len(parts) != 6 || parts[3] != "m=1024,t=1,p=1" || len(parts[4]) != len("c2FsdHNhbHRzYWx0c2FsdA") || len(parts[5]) != 43 {
		t.Fatalf("decoy %q is not shaped like bob's hash", d)
	}
	if strings.Trim(parts[4], "A") == "" || parts[4] == "c2FsdHNhbHRzYWx0c2FsdA" {
		t.Errorf("decoy salt %q is the model's zeros or bob's salt, not one of its own", parts[4])
	}
}

func TestDecoyHash_ACostlierStoredHashCheckedLaterRaisesIt(t *testing.T) {
	cheap, _ := bcrypt.GenerateFromPassword([]byte("a"), 4)
	dear, _ := bcrypt.GenerateFromPassword([]byte("b"), 6)
	g := &Gateway{cfg: Config{Users: map[string][]byte{"alice": cheap}}, decoy: newDecoy()}
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

func TestDecoyHash_WithoutAnyHashIsBcryptAtTheDecoyCost(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.DecoyCost != 14 {
		t.Fatalf("default decoy cost = %d, want 14, what caddy hash-password makes", c.DecoyCost)
	}
	if _, work := (&Gateway{cfg: c}).costliestHash(); work != hashWork([]byte("$2a$14$"+strings.Repeat("a", 53))) {
		t.Errorf("work of the default decoy = %g, want that of bcrypt cost 14", work)
	}
	g := &Gateway{cfg: Config{DecoyCost: 5}, decoy: newDecoy()}
	g.cfg.setDefaults()
	if c, err := bcrypt.Cost(g.decoyHash()); err != nil || c != 5 {
		t.Fatalf("decoy cost %d (%v), want the configured 5", c, err)
	}
	for _, bad := range []int{3, 32} {
		c := Config{DecoyCost: bad, Store: memstore.New()}
		c.setDefaults()
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), "decoy cost") {
			t.Errorf("decoy cost %d: %v, want a refusal", bad, err)
		}
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
