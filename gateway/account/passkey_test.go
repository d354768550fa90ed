package account_test

import (
	"errors"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

func withPasskey(count uint32) account.Account {
	a := account.Account{Name: "alice"}
	if err := a.AddPasskey(account.Passkey{ID: []byte{1}, Name: " My   key ", SignCount: count}); err != nil {
		panic(err)
	}
	return a
}

func TestUsePasskey_CounterMustGrowWhenEitherSideIsNonZero(t *testing.T) {
	for _, tc := range []struct {
		name            string
		stored, offered uint32
		want            error
	}{
		{"synced passkey: both zero", 0, 0, nil},
		{"first count after zero", 0, 1, nil},
		{"grows", 5, 6, nil},
		{"jumps", 5, 500, nil},
		{"same as stored", 5, 5, account.ErrPasskeyClone},
		{"lower than stored", 5, 3, account.ErrPasskeyClone},
		{"drops to zero", 5, 0, account.ErrPasskeyClone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := withPasskey(tc.stored)
			err := a.UsePasskey([]byte{1}, tc.offered, true, t0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("UsePasskey(%d after %d) = %v, want %v", tc.offered, tc.stored, err, tc.want)
			}
			p, _ := a.Passkey([]byte{1})
			if tc.want == nil && (p.SignCount != tc.offered || !p.LastUsed.Equal(t0) || !p.BackupState) {
				t.Fatalf("accepted but not recorded: %+v", p)
			}
			if tc.want != nil && (p.SignCount != tc.stored || !p.LastUsed.IsZero()) {
				t.Fatalf("a refused clone changed the passkey: %+v", p)
			}
		})
	}
}

func TestRemovePasskey_LastSecondFactorStaysWhere2FAIsRequired(t *testing.T) {
	a := withPasskey(0)
	if err := a.RemovePasskey([]byte{1}, true); !errors.Is(err, account.ErrLastFactor) {
		t.Fatalf("removing the last factor: %v, want ErrLastFactor", err)
	}
	a.TOTPSecret = "JBSWY3DPEHPK3PXP"
	if err := a.RemovePasskey([]byte{1}, true); err != nil || len(a.Passkeys) != 0 {
		t.Fatalf("removing a passkey beside TOTP: %v %+v", err, a.Passkeys)
	}
	b := withPasskey(0)
	if err := b.RemovePasskey([]byte{1}, false); err != nil || b.HasSecondFactor() {
		t.Fatalf("removing the last factor where 2FA is optional: %v", err)
	}
	if err := b.RemovePasskey([]byte{1}, false); !errors.Is(err, account.ErrNoPasskey) {
		t.Fatalf("removing it again: %v", err)
	}
}

func TestAddPasskey_NamesAndLimits(t *testing.T) {
	a := withPasskey(0)
	if p, _ := a.Passkey([]byte{1}); p.Name != "My key" {
		t.Errorf("name %q, want spaces folded", p.Name)
	}
	if err := a.AddPasskey(account.Passkey{ID: []byte{1}}); !errors.Is(err, account.ErrPasskeyExists) {
		t.Errorf("the same credential twice: %v", err)
	}
	for i := 2; i <= account.MaxPasskeys; i++ {
		if err := a.AddPasskey(account.Passkey{ID: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.AddPasskey(account.Passkey{ID: []byte{200}}); !errors.Is(err, account.ErrTooManyPasskeys) {
		t.Errorf("one past the limit: %v", err)
	}
	if p, _ := a.Passkey([]byte{2}); p.Name != "Passkey" {
		t.Errorf("an unnamed passkey is called %q", p.Name)
	}
	if err := a.RenamePasskey([]byte{2}, "Phone"); err != nil {
		t.Fatal(err)
	}
	if p, _ := a.Passkey([]byte{2}); p.Name != "Phone" {
		t.Errorf("renamed to %q", p.Name)
	}
}

func TestSpendChallenge_OnceUntilItExpires(t *testing.T) {
	var a account.Account
	until := t0.Add(5 * time.Minute)
	if err := a.SpendChallenge("c1", until, t0); err != nil {
		t.Fatal(err)
	}
	if err := a.SpendChallenge("c1", until, t0.Add(time.Minute)); !errors.Is(err, account.ErrChallengeUsed) {
		t.Fatalf("a second answer: %v", err)
	}
	// Once over, it is forgotten (its ceremony refuses it by then anyway).
	if err := a.SpendChallenge("c2", t0.Add(20*time.Minute), until); err != nil || len(a.SpentChallenges) != 1 {
		t.Fatalf("after expiry: %v, %d kept", err, len(a.SpentChallenges))
	}
	var full account.Account
	for i := range account.MaxSpentChallenges {
		if err := full.SpendChallenge(string(rune('A'+i)), until, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := full.SpendChallenge("one more", until, t0); !errors.Is(err, account.ErrTooManyChallenges) {
		t.Fatalf("past the limit: %v, want a refusal rather than forgetting one", err)
	}
}

func TestDisableTOTP_RemovesPasskeysToo(t *testing.T) {
	a := withPasskey(3)
	a.BackupCodes = [][]byte{[]byte("h")}
	a.Stored = true
	if err := a.ResetTwoFactor(); err != nil {
		t.Fatal(err)
	}
	if a.HasSecondFactor() || len(a.Passkeys) != 0 || len(a.BackupCodes) != 0 {
		t.Fatalf("reset left a second factor: %+v", a)
	}
	if account.SessionStateOf(a).TOTPEnabled {
		t.Fatal("the session state still names a second factor")
	}
}

func TestClone_CopiesPasskeysDeeply(t *testing.T) {
	a := withPasskey(1)
	b := a.Clone()
	b.Passkeys[0].ID[0] = 9
	b.Passkeys[0].Name = "changed"
	if p, ok := a.Passkey([]byte{1}); !ok || p.Name != "My key" {
		t.Fatal("a clone shares the passkeys of its original")
	}
}
