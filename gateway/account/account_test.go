package account_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/memstore"
	"github.com/totp-auth/totp_auth/internal/storetest"
)

// These tests hold the rules of Account, applied through a Store as the
// flow applies them (update.go), to SPEC §3-4. They run over the in-memory
// store; internal/storetest holds every store to the atomicity and
// persistence those rules rely on.

func openMemStore(*testing.T) account.Store { return memstore.New() }

func TestAccountRules(t *testing.T) {
	t.Run("Enrollment", func(t *testing.T) { testEnrollment(t, openMemStore) })
	t.Run("AcceptStep", func(t *testing.T) { testAcceptStep(t, openMemStore) })
	t.Run("BackupCodes", func(t *testing.T) { testBackupCodes(t, openMemStore) })
	t.Run("DisableTOTP", func(t *testing.T) { testDisableTOTP(t, openMemStore) })
	t.Run("BumpGeneration", func(t *testing.T) { testBumpGeneration(t, openMemStore) })
	t.Run("RevokeSession", func(t *testing.T) { testRevokeSession(t, openMemStore) })
}

// The fixtures and helpers are the store suite's, so the rules here and
// the stores there are held to the same ones.
var (
	t0               = storetest.T0
	hashes           = storetest.Hashes
	enrollFor        = storetest.EnrollFor
	enroll           = storetest.Enroll
	mustAccount      = storetest.MustAccount
	mustSessionState = storetest.MustSessionState
	equalCodes       = storetest.EqualCodes
	concurrently     = storetest.Concurrently
)

const (
	secretA = storetest.SecretA
	secretB = storetest.SecretB
)

func testEnrollment(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("pending enrollment is the same until it expires", func(t *testing.T) {
		s := open(t)
		create, calls := enrollFor(secretA, t0)
		first, err := account.EnrollmentFor(s, "alice", 0, t0, create)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []time.Time{t0, t0.Add(time.Minute), t0.Add(gateway.EnrollmentTTL - time.Nanosecond)} {
			again, err := account.EnrollmentFor(s, "alice", 0, at, create)
			if err != nil {
				t.Fatal(err)
			}
			if again.Secret != first.Secret || !again.Expires.Equal(first.Expires) {
				t.Errorf("at %s: got %v, want the first enrollment again", at.Sub(t0), again.Expires)
			}
		}
		if *calls != 1 {
			t.Errorf("create called %d times, want 1", *calls)
		}
		if a := mustAccount(t, s, "alice"); a.TOTPSecret != "" {
			t.Error("a pending enrollment enabled TOTP")
		}
		if st := mustSessionState(t, s, "alice"); st.TOTPEnabled {
			t.Error("a pending enrollment shows as TOTPEnabled")
		}
	})
	t.Run("pending enrollment is replaced once it expired", func(t *testing.T) {
		s := open(t)
		create, _ := enrollFor(secretA, t0)
		if _, err := account.EnrollmentFor(s, "alice", 0, t0, create); err != nil {
			t.Fatal(err)
		}
		later := t0.Add(gateway.EnrollmentTTL)
		createB, calls := enrollFor(secretB, later)
		got, err := account.EnrollmentFor(s, "alice", 0, later, createB)
		if err != nil {
			t.Fatal(err)
		}
		if *calls != 1 || got.Secret != secretB || !got.Expires.Equal(later.Add(gateway.EnrollmentTTL)) {
			t.Errorf("got secret B=%v expires %v after %d calls, want the fresh enrollment", got.Secret == secretB, got.Expires, *calls)
		}
		if err := account.ConfirmEnrollment(s, "alice", secretA, 1, nil, later); !errors.Is(err, account.ErrNoEnrollment) {
			t.Errorf("confirming the replaced secret: %v, want ErrNoEnrollment", err)
		}
	})
	t.Run("create failing stores nothing", func(t *testing.T) {
		s := open(t)
		boom := errors.New("no randomness")
		_, err := account.EnrollmentFor(s, "alice", 0, t0, func() (account.Enrollment, error) { return account.Enrollment{}, boom })
		if !errors.Is(err, boom) {
			t.Errorf("PendingEnrollment = %v, want the create error", err)
		}
		create, calls := enrollFor(secretA, t0)
		if _, err := account.EnrollmentFor(s, "alice", 0, t0, create); err != nil || *calls != 1 {
			t.Errorf("after a failed create: err %v, create called %d times, want a fresh one", err, *calls)
		}
	})
	t.Run("confirm enables totp and sets step, codes and flags at once", func(t *testing.T) {
		s := open(t)
		if err := account.ReplaceBackupCodes(s, "alice", hashes("old")); err != nil {
			t.Fatal(err)
		}
		if err := account.UseBackupCode(s, "alice", hashes("old")[0]); err != nil {
			t.Fatal(err)
		}
		create, _ := enrollFor(secretA, t0)
		if _, err := account.EnrollmentFor(s, "alice", 0, t0, create); err != nil {
			t.Fatal(err)
		}
		if err := account.ConfirmEnrollment(s, "alice", secretA, 12345, hashes("a", "b"), t0.Add(time.Minute)); err != nil {
			t.Fatalf("ConfirmEnrollment: %v", err)
		}
		a := mustAccount(t, s, "alice")
		if a.TOTPSecret != secretA || a.LastStep != 12345 || !equalCodes(a.BackupCodes, hashes("a", "b")) || a.MustRegenerate || !a.Stored {
			t.Errorf("after confirm: secret ok %v, step %d, codes %q, must regenerate %v, stored %v",
				a.TOTPSecret == secretA, a.LastStep, a.BackupCodes, a.MustRegenerate, a.Stored)
		}
		if st := mustSessionState(t, s, "alice"); !st.TOTPEnabled || st.MustRegenerate {
			t.Errorf("SessionState after confirm = %+v, want TOTPEnabled only", st)
		}
		if err := account.ConfirmEnrollment(s, "alice", secretA, 12346, nil, t0.Add(time.Minute)); !errors.Is(err, account.ErrNoEnrollment) {
			t.Errorf("second confirm = %v, want ErrNoEnrollment (pending removed)", err)
		}
		create2, calls := enrollFor(secretB, t0)
		if _, err := account.EnrollmentFor(s, "alice", 0, t0.Add(time.Minute), create2); err != nil || *calls != 1 {
			t.Errorf("PendingEnrollment after confirm: err %v, create called %d times, want a fresh one", err, *calls)
		}
	})
	t.Run("confirm is refused unless the pending enrollment holds the secret and is unexpired", func(t *testing.T) {
		tests := []struct {
			name    string
			pending bool
			secret  string
			at      time.Time
		}{
			{"without a pending enrollment", false, secretA, t0},
			{"with another secret", true, secretB, t0},
			{"with an empty secret", true, "", t0},
			{"at the expiry instant", true, secretA, t0.Add(gateway.EnrollmentTTL)},
			{"after expiry", true, secretA, t0.Add(time.Hour)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open(t)
				if tt.pending {
					create, _ := enrollFor(secretA, t0)
					if _, err := account.EnrollmentFor(s, "alice", 0, t0, create); err != nil {
						t.Fatal(err)
					}
				}
				err := account.ConfirmEnrollment(s, "alice", tt.secret, 7, hashes("a"), tt.at)
				if !errors.Is(err, account.ErrNoEnrollment) {
					t.Errorf("ConfirmEnrollment = %v, want ErrNoEnrollment", err)
				}
				a := mustAccount(t, s, "alice")
				if a.TOTPSecret != "" || a.LastStep != 0 || len(a.BackupCodes) != 0 {
					t.Errorf("a refused confirm changed the account: step %d, %d codes, secret set %v", a.LastStep, len(a.BackupCodes), a.TOTPSecret != "")
				}
			})
		}
	})
	t.Run("re-enrolling keeps the old secret until the new one is confirmed", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", hashes("a"))
		create, _ := enrollFor(secretB, t0.Add(time.Hour))
		if _, err := account.EnrollmentFor(s, "alice", 0, t0.Add(time.Hour), create); err != nil {
			t.Fatal(err)
		}
		if a := mustAccount(t, s, "alice"); a.TOTPSecret != secretA {
			t.Error("a pending re-enrollment replaced the enabled secret")
		}
		if err := account.ConfirmEnrollment(s, "alice", secretB, 200, hashes("b"), t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if a := mustAccount(t, s, "alice"); a.TOTPSecret != secretB || !equalCodes(a.BackupCodes, hashes("b")) {
			t.Error("confirming the re-enrollment did not replace secret and codes")
		}
	})
}

func testAcceptStep(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("only a step later than the last accepted one is accepted", func(t *testing.T) {
		tests := []struct {
			step int64
			want error
		}{
			{0, account.ErrStepReused},
			{99, account.ErrStepReused},
			{100, account.ErrStepReused},
			{101, nil},
			{5000, nil},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("step %d after 100", tt.step), func(t *testing.T) {
				s := open(t)
				enroll(t, s, "alice", nil)
				if err := account.AcceptStep(s, "alice", tt.step); !errors.Is(err, tt.want) {
					t.Fatalf("AcceptStep(%d) = %v, want %v", tt.step, err, tt.want)
				}
				want := int64(100)
				if tt.want == nil {
					want = tt.step
				}
				if got := mustAccount(t, s, "alice").LastStep; got != want {
					t.Errorf("LastStep = %d, want %d", got, want)
				}
			})
		}
	})
	t.Run("an accepted step is refused the second time", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", nil)
		if err := account.AcceptStep(s, "alice", 101); err != nil {
			t.Fatal(err)
		}
		if err := account.AcceptStep(s, "alice", 101); !errors.Is(err, account.ErrStepReused) {
			t.Errorf("second AcceptStep(101) = %v, want ErrStepReused", err)
		}
	})
	t.Run("steps of one user do not block another", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", nil)
		enroll(t, s, "bob", nil)
		if err := account.AcceptStep(s, "alice", 101); err != nil {
			t.Fatal(err)
		}
		if err := account.AcceptStep(s, "bob", 101); err != nil {
			t.Errorf("AcceptStep(bob, 101) = %v after alice used 101", err)
		}
	})
}

func testBackupCodes(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("a used code is removed and must-regenerate is set", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", hashes("a", "b", "c"))
		if err := account.UseBackupCode(s, "alice", hashes("b")[0]); err != nil {
			t.Fatalf("UseBackupCode: %v", err)
		}
		a := mustAccount(t, s, "alice")
		if !equalCodes(a.BackupCodes, hashes("a", "c")) || !a.MustRegenerate {
			t.Errorf("after use: codes %q, must regenerate %v; want a, c and true", a.BackupCodes, a.MustRegenerate)
		}
		if st := mustSessionState(t, s, "alice"); !st.MustRegenerate || !st.TOTPEnabled {
			t.Errorf("SessionState after use = %+v, want MustRegenerate and TOTPEnabled", st)
		}
	})
	t.Run("a code is refused unless it is unused", func(t *testing.T) {
		tests := []struct {
			name string
			user string
			hash []byte
		}{
			{"already used", "alice", hashes("a")[0]},
			{"never issued", "alice", hashes("zzz")[0]},
			{"issued to another user", "alice", hashes("bob")[0]},
			{"empty", "alice", nil},
			{"for an unknown user", "nobody", hashes("b")[0]},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open(t)
				enroll(t, s, "alice", hashes("a", "b"))
				enroll(t, s, "bob", hashes("bob"))
				if err := account.UseBackupCode(s, "alice", hashes("a")[0]); err != nil {
					t.Fatal(err)
				}
				if err := account.UseBackupCode(s, tt.user, tt.hash); !errors.Is(err, account.ErrCodeUsed) {
					t.Errorf("UseBackupCode = %v, want ErrCodeUsed", err)
				}
				if a := mustAccount(t, s, "alice"); !equalCodes(a.BackupCodes, hashes("b")) {
					t.Errorf("a refused code changed alice's codes: %q", a.BackupCodes)
				}
			})
		}
	})
	t.Run("replacing the codes voids every old one and clears must-regenerate", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", hashes("a", "b"))
		if err := account.UseBackupCode(s, "alice", hashes("a")[0]); err != nil {
			t.Fatal(err)
		}
		if err := account.ReplaceBackupCodes(s, "alice", hashes("c", "d")); err != nil {
			t.Fatal(err)
		}
		a := mustAccount(t, s, "alice")
		if !equalCodes(a.BackupCodes, hashes("c", "d")) || a.MustRegenerate || a.TOTPSecret != secretA {
			t.Errorf("after replace: codes %q, must regenerate %v, secret kept %v", a.BackupCodes, a.MustRegenerate, a.TOTPSecret == secretA)
		}
		if err := account.UseBackupCode(s, "alice", hashes("b")[0]); !errors.Is(err, account.ErrCodeUsed) {
			t.Errorf("old code after replace: %v, want ErrCodeUsed", err)
		}
		if err := account.UseBackupCode(s, "alice", hashes("d")[0]); err != nil {
			t.Errorf("new code after replace: %v", err)
		}
	})
}

func testDisableTOTP(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("disable removes secret, codes and pending enrollment and clears must-regenerate", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", hashes("a", "b"))
		if err := account.UseBackupCode(s, "alice", hashes("a")[0]); err != nil {
			t.Fatal(err)
		}
		create, _ := enrollFor(secretB, t0)
		if _, err := account.EnrollmentFor(s, "alice", 0, t0, create); err != nil {
			t.Fatal(err)
		}
		gen, err := account.BumpGeneration(s, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if err := account.DisableTOTP(s, "alice"); err != nil {
			t.Fatalf("DisableTOTP: %v", err)
		}
		a := mustAccount(t, s, "alice")
		if a.TOTPSecret != "" || len(a.BackupCodes) != 0 || a.MustRegenerate || a.Generation != gen {
			t.Errorf("after disable: secret set %v, %d codes, must regenerate %v, generation %d (want %d)",
				a.TOTPSecret != "", len(a.BackupCodes), a.MustRegenerate, a.Generation, gen)
		}
		if st := mustSessionState(t, s, "alice"); st != (account.SessionState{Generation: gen}) {
			t.Errorf("SessionState after disable = %+v", st)
		}
		if err := account.ConfirmEnrollment(s, "alice", secretB, 300, nil, t0); !errors.Is(err, account.ErrNoEnrollment) {
			t.Errorf("confirming the enrollment pending before disable: %v, want ErrNoEnrollment", err)
		}
	})
	t.Run("disable of a user without totp succeeds", func(t *testing.T) {
		s := open(t)
		if err := account.DisableTOTP(s, "nobody"); err != nil {
			t.Errorf("DisableTOTP(nobody) = %v", err)
		}
		if st := mustSessionState(t, s, "nobody"); st != (account.SessionState{}) {
			t.Errorf("SessionState(nobody) = %+v, want zero", st)
		}
	})
}

func testBumpGeneration(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("each bump returns a higher generation that session state reports", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", nil)
		var last uint64
		for range 3 {
			gen, err := account.BumpGeneration(s, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if gen <= last {
				t.Fatalf("BumpGeneration = %d after %d, want higher", gen, last)
			}
			last = gen
		}
		if st := mustSessionState(t, s, "alice"); st.Generation != last || !st.TOTPEnabled {
			t.Errorf("SessionState = %+v, want generation %d", st, last)
		}
		if a := mustAccount(t, s, "alice"); a.Generation != last || a.TOTPSecret != secretA {
			t.Errorf("Account generation %d, want %d, secret kept", a.Generation, last)
		}
	})
	t.Run("bumping an unknown user starts its generations", func(t *testing.T) {
		s := open(t)
		gen, err := account.BumpGeneration(s, "nobody")
		if err != nil || gen == 0 {
			t.Fatalf("BumpGeneration(nobody) = %d, %v; want > 0", gen, err)
		}
		if st := mustSessionState(t, s, "nobody"); st.Generation != gen {
			t.Errorf("SessionState(nobody).Generation = %d, want %d", st.Generation, gen)
		}
	})
}

func testRevokeSession(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("a revoked session is reported, others are not", func(t *testing.T) {
		s := open(t)
		if err := account.RevokeSession(s, "alice", 7, t0.Add(time.Hour), t0); err != nil {
			t.Fatal(err)
		}
		st, err := s.SessionState("alice")
		if err != nil || !st.Revoked(7) || st.Revoked(8) {
			t.Fatalf("SessionState = %+v, %v; want session 7 revoked and 8 not", st, err)
		}
		if other, _ := s.SessionState("bob"); other.Revoked(7) {
			t.Fatal("a revocation of alice's session shows for bob")
		}
	})
	t.Run("revocations survive other writes of the account", func(t *testing.T) {
		s := open(t)
		if err := account.RevokeSession(s, "alice", 7, t0.Add(time.Hour), t0); err != nil {
			t.Fatal(err)
		}
		if err := account.AcceptStep(s, "alice", 100); err != nil {
			t.Fatal(err)
		}
		create, _ := enrollFor(secretA, t0)
		if _, err := account.EnrollmentFor(s, "alice", 0, t0, create); err != nil {
			t.Fatal(err)
		}
		if st, _ := s.SessionState("alice"); !st.Revoked(7) {
			t.Fatal("revocation lost by a later write")
		}
	})
	t.Run("a revocation is forgotten once its session would have expired", func(t *testing.T) {
		s := open(t)
		if err := account.RevokeSession(s, "alice", 7, t0.Add(time.Hour), t0); err != nil {
			t.Fatal(err)
		}
		if err := account.RevokeSession(s, "alice", 8, t0.Add(3*time.Hour), t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		st, _ := s.SessionState("alice")
		if st.Revoked(7) || !st.Revoked(8) {
			t.Fatalf("RevokedSessions %x: want 7 pruned, 8 kept", st.RevokedSessions)
		}
	})
	t.Run("past the limit every session ends", func(t *testing.T) {
		s := open(t)
		before, _ := s.SessionState("alice")
		for i := 0; i <= account.MaxRevokedSessions; i++ {
			if err := account.RevokeSession(s, "alice", uint64(i+1), t0.Add(time.Hour), t0); err != nil {
				t.Fatal(err)
			}
		}
		st, _ := s.SessionState("alice")
		if st.Generation <= before.Generation {
			t.Fatalf("generation %d after %d revocations, want it raised", st.Generation, account.MaxRevokedSessions+1)
		}
		if len(st.RevokedSessions) > 8*account.MaxRevokedSessions {
			t.Fatalf("%d revocations kept, want at most %d", len(st.RevokedSessions)/8, account.MaxRevokedSessions)
		}
	})
}
