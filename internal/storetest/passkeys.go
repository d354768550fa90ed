package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// testPasskeys holds a store to what passkeys (SPEC §14) need of it: every
// field of a passkey survives a save, having one is a second factor in the
// session state, and a challenge or a counter is accepted once under
// concurrent answers.
func testPasskeys(t *testing.T, open func(t *testing.T) account.Store) {
	pk := account.Passkey{
		ID: []byte{1, 2, 3}, Name: "Laptop", PublicKey: []byte{0xa5, 1, 2}, AttestationType: "none",
		SignCount: 7, BackupEligible: true, BackupState: true, UserVerified: true,
		AAGUID: bytes.Repeat([]byte{9}, 16), Transports: []string{"internal", "hybrid"},
		RPID: "example.com", Discoverable: true, Created: T0, LastUsed: T0.Add(time.Hour),
	}
	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		if err := s.UpdateAccount("alice", func(a *account.Account) error {
			a.SetPassword(Hashes("pw")[0])
			return a.AddPasskey(pk)
		}); err != nil {
			t.Fatal(err)
		}
		a := MustAccount(t, s, "alice")
		if len(a.Passkeys) != 1 {
			t.Fatalf("passkeys after save: %+v", a.Passkeys)
		}
		got := a.Passkeys[0]
		if !bytes.Equal(got.ID, pk.ID) || got.Name != pk.Name || !bytes.Equal(got.PublicKey, pk.PublicKey) ||
			got.AttestationType != pk.AttestationType || got.SignCount != pk.SignCount || !got.BackupEligible ||
			!got.BackupState || !got.UserVerified || !bytes.Equal(got.AAGUID, pk.AAGUID) || len(got.Transports) != 2 ||
			got.RPID != pk.RPID || !got.Discoverable || !got.Created.Equal(pk.Created) || !got.LastUsed.Equal(pk.LastUsed) {
			t.Fatalf("passkey after save:\n got %+v\nwant %+v", got, pk)
		}
		if list, err := s.Accounts(); err != nil || len(list) != 1 || len(list[0].Passkeys) != 1 {
			t.Fatalf("Accounts lists passkeys: %v %+v", err, list)
		}
	})
	t.Run("SessionStateCountsPasskeysAsSecondFactor", func(t *testing.T) {
		s := open(t)
		if err := s.UpdateAccount("alice", func(a *account.Account) error {
			a.SetPassword(Hashes("pw")[0])
			return a.AddPasskey(pk)
		}); err != nil {
			t.Fatal(err)
		}
		if !MustSessionState(t, s, "alice").TOTPEnabled {
			t.Fatal("a user with a passkey has no second factor in the session state")
		}
		if err := s.UpdateAccount("alice", func(a *account.Account) error { return a.RemovePasskey(pk.ID, false) }); err != nil {
			t.Fatal(err)
		}
		if MustSessionState(t, s, "alice").TOTPEnabled {
			t.Fatal("a user whose last passkey was removed still has a second factor in the session state")
		}
	})
	t.Run("ChallengeSpentOnceUnderConcurrentAnswers", func(t *testing.T) {
		s := open(t)
		ok := Concurrently(t, 16, account.ErrChallengeUsed, func() error {
			return s.UpdateAccount("alice", func(a *account.Account) error {
				return a.SpendChallenge("challenge-1", T0.Add(5*time.Minute), T0)
			})
		})
		if ok != 1 {
			t.Fatalf("%d concurrent answers to one challenge were accepted, want 1", ok)
		}
		if len(MustAccount(t, s, "alice").SpentChallenges) != 1 {
			t.Fatal("the spent challenge was not kept")
		}
	})
	t.Run("CounterAcceptedOnceUnderConcurrentAnswers", func(t *testing.T) {
		s := open(t)
		if err := s.UpdateAccount("alice", func(a *account.Account) error { return a.AddPasskey(pk) }); err != nil {
			t.Fatal(err)
		}
		ok := Concurrently(t, 16, account.ErrPasskeyClone, func() error {
			return s.UpdateAccount("alice", func(a *account.Account) error {
				return a.UsePasskey(pk.ID, 8, true, T0)
			})
		})
		if ok != 1 {
			t.Fatalf("%d concurrent answers with one counter were accepted, want 1", ok)
		}
		if got := MustAccount(t, s, "alice").Passkeys[0].SignCount; got != 8 {
			t.Fatalf("counter %d, want 8", got)
		}
	})
}
