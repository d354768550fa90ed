package secrets

import (
	"bytes"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

func testKeyring(t *testing.T) (*Keyring, KeyID) {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewKeyring([]Key{k})
	if err != nil {
		t.Fatal(err)
	}
	return r, k.KeyID()
}

func TestSealAccount_KeepsCiphertextOfUnchangedSecretsAndAsksTheKeyOnce(t *testing.T) {
	r, id := testKeyring(t)
	asked := 0
	current := func() (KeyID, error) { asked++; return id, nil }
	a := account.Account{Name: "alice", TOTPSecret: "JBSWY3DPEHPK3PXP",
		Pending: &account.Enrollment{Secret: "KRSXG5CTMVRXEZLU", Expires: time.Unix(100, 0)}}
	s, err := r.SealAccount(a, account.Account{Name: "alice"}, Sealed{}, current)
	if err != nil {
		t.Fatal(err)
	}
	if asked != 1 {
		t.Errorf("current key asked %d times for two secrets, want once", asked)
	}
	if bytes.Contains(s.TOTP, []byte(a.TOTPSecret)) || bytes.Contains(s.Pending, []byte(a.Pending.Secret)) {
		t.Fatal("a sealed secret holds its plain text")
	}

	opened := account.Account{Name: "alice", Pending: &account.Enrollment{}}
	if err := r.OpenAccount(&opened, s); err != nil {
		t.Fatal(err)
	}
	if opened.TOTPSecret != a.TOTPSecret || opened.Pending.Secret != a.Pending.Secret {
		t.Fatalf("opened %q/%q, want what was sealed", opened.TOTPSecret, opened.Pending.Secret)
	}

	asked = 0
	again, err := r.SealAccount(opened, opened, s, current)
	if err != nil {
		t.Fatal(err)
	}
	if asked != 0 || !bytes.Equal(again.TOTP, s.TOTP) || !bytes.Equal(again.Pending, s.Pending) {
		t.Errorf("unchanged secrets were sealed again (key asked %d times)", asked)
	}

	changed := opened.Clone()
	changed.TOTPSecret = "MFRGGZDFMZTWQ2LK"
	changed.Pending = nil
	next, err := r.SealAccount(changed, opened, s, current)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(next.TOTP, s.TOTP) || next.Pending != nil {
		t.Errorf("a changed secret kept its old ciphertext, or a removed one stayed")
	}
}

func TestOpenAccount_SecretsAreBoundToTheirOwner(t *testing.T) {
	r, id := testKeyring(t)
	s, err := r.SealAccount(account.Account{Name: "alice", TOTPSecret: "JBSWY3DPEHPK3PXP"}, account.Account{}, Sealed{},
		func() (KeyID, error) { return id, nil })
	if err != nil {
		t.Fatal(err)
	}
	mallory := account.Account{Name: "mallory"}
	if err := r.OpenAccount(&mallory, s); err == nil {
		t.Fatal("alice's secret opened as mallory's")
	}
	if mallory.TOTPSecret != account.SecretWithheld {
		t.Errorf("after a failed open TOTPSecret = %q, want it withheld", mallory.TOTPSecret)
	}
}

func TestWithhold_MarksOnlyTheSecretsThereAre(t *testing.T) {
	var a account.Account
	Sealed{}.Withhold(&a)
	if a.TOTPSecret != "" || a.Pending != nil {
		t.Errorf("nothing sealed, but withheld: %+v", a)
	}
	Sealed{TOTP: []byte{1}, Pending: []byte{2}}.Withhold(&a)
	if a.TOTPSecret != account.SecretWithheld || a.Pending == nil || a.Pending.Secret != account.SecretWithheld {
		t.Errorf("withheld = %+v, want both secrets withheld", a)
	}
}

func TestReseal_MovesToTheNewKeyAndKeepsNil(t *testing.T) {
	r, id := testKeyring(t)
	k2, _ := NewKey()
	r2, err := r.With(k2)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := r2.Seal(id, PurposeTOTPSecret, "alice", []byte("JBSWY3DPEHPK3PXP"))
	if err != nil {
		t.Fatal(err)
	}
	moved, err := r2.ResealAccount(k2.KeyID(), "alice", Sealed{TOTP: sealed})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := SealedKeyID(moved.TOTP); got != k2.KeyID() || moved.Pending != nil {
		t.Errorf("resealed under %s (pending %x), want %s and nil", got, moved.Pending, k2.KeyID())
	}
}

func TestOpenAccount_APendingEnrollmentWithoutItsSecretIsRefused(t *testing.T) {
	r, _ := testKeyring(t)
	a := account.Account{Name: "alice", Pending: &account.Enrollment{Expires: time.Unix(100, 0)}}
	if err := r.OpenAccount(&a, Sealed{}); err == nil {
		t.Fatal("a pending enrollment without a sealed secret opened")
	}
}
