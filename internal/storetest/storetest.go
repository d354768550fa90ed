// Package storetest is the conformance suite for gateway.Store. Every Store
// implementation runs it from its own tests, so the in-memory store the
// gateway tests use and the bbolt store Caddy uses keep the same behaviour.
//
// It holds only tests of what gateway.Store documents; anything an
// implementation adds (encryption, files, operator functions) is tested
// beside that implementation.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

// Run runs every conformance test against stores made by open. open is
// called once per subtest and must return an empty store; it should close
// the store with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) gateway.Store) {
	t.Run("Account", func(t *testing.T) { testAccount(t, open) })
	t.Run("Enrollment", func(t *testing.T) { testEnrollment(t, open) })
	t.Run("AcceptStep", func(t *testing.T) { testAcceptStep(t, open) })
	t.Run("BackupCodes", func(t *testing.T) { testBackupCodes(t, open) })
	t.Run("DisableTOTP", func(t *testing.T) { testDisableTOTP(t, open) })
	t.Run("BumpGeneration", func(t *testing.T) { testBumpGeneration(t, open) })
	t.Run("RevokeSession", func(t *testing.T) { testRevokeSession(t, open) })
	t.Run("Lockout", func(t *testing.T) { testLockout(t, open) })
	t.Run("SessionKeys", func(t *testing.T) { testSessionKeys(t, open) })
}

// t0 is a fixed instant so that every expiry in the suite is exact.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	secretA = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	secretB = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
)

func hashes(names ...string) [][]byte {
	out := make([][]byte, len(names))
	for i, n := range names {
		out[i] = []byte("$2a$10$fakehash." + n)
	}
	return out
}

// enrollFor returns a create function handing out secret with expiry at
// now+gateway.EnrollmentTTL, and a counter of how often it was called.
func enrollFor(secret string, now time.Time) (create func() (gateway.Enrollment, error), calls *int) {
	calls = new(int)
	create = func() (gateway.Enrollment, error) {
		*calls++
		return gateway.Enrollment{Secret: secret, Expires: now.Add(gateway.EnrollmentTTL)}, nil
	}
	return create, calls
}

// enroll gives user an enabled TOTP secret, last step 100 and the codes.
func enroll(t *testing.T, s gateway.Store, user string, codes [][]byte) {
	t.Helper()
	create, _ := enrollFor(secretA, t0)
	if _, err := s.PendingEnrollment(user, t0, create); err != nil {
		t.Fatalf("PendingEnrollment: %v", err)
	}
	if err := s.ConfirmEnrollment(user, secretA, 100, codes, t0.Add(time.Minute)); err != nil {
		t.Fatalf("ConfirmEnrollment: %v", err)
	}
}

func mustAccount(t *testing.T, s gateway.Store, user string) gateway.Account {
	t.Helper()
	a, err := s.Account(user)
	if err != nil {
		t.Fatalf("Account(%q): %v", user, err)
	}
	return a
}

func mustSessionState(t *testing.T, s gateway.Store, user string) gateway.SessionState {
	t.Helper()
	st, err := s.SessionState(user)
	if err != nil {
		t.Fatalf("SessionState(%q): %v", user, err)
	}
	return st
}

func equalCodes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// concurrently runs f n times at once and returns how many calls returned
// nil; every other error must be want.
func concurrently(t *testing.T, n int, want error, f func() error) int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ok    int
		other []error
		start = make(chan struct{})
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := f()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, want):
				other = append(other, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range other {
		t.Errorf("unexpected error: %v", err)
	}
	return ok
}

func testAccount(t *testing.T, open func(t *testing.T) gateway.Store) {
	t.Run("unknown user has an account with only the name", func(t *testing.T) {
		s := open(t)
		a := mustAccount(t, s, "nobody")
		if a.Name != "nobody" || a.Stored || a.PasswordHash != nil || a.TOTPSecret != "" ||
			a.LastStep != 0 || len(a.BackupCodes) != 0 || a.MustRegenerate || a.Generation != 0 {
			t.Errorf("Account(nobody) = %+v, want Account{Name: nobody}", a)
		}
	})
	t.Run("unknown user has the zero session state", func(t *testing.T) {
		s := open(t)
		if st := mustSessionState(t, s, "nobody"); st != (gateway.SessionState{}) {
			t.Errorf("SessionState(nobody) = %+v, want zero", st)
		}
	})
	t.Run("returned backup codes do not alias the stored ones", func(t *testing.T) {
		s := open(t)
		codes := hashes("a", "b")
		enroll(t, s, "alice", codes)
		codes[0][0] = 'X' // the caller reusing its slice must not change the store
		a := mustAccount(t, s, "alice")
		a.BackupCodes[1][0] = 'Y'
		if got := mustAccount(t, s, "alice"); !equalCodes(got.BackupCodes, hashes("a", "b")) {
			t.Errorf("stored codes changed through a caller's slice: %q", got.BackupCodes)
		}
	})
	t.Run("records of one user do not touch another", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", hashes("a"))
		if _, err := s.BumpGeneration("alice"); err != nil {
			t.Fatal(err)
		}
		if a := mustAccount(t, s, "bob"); a.Stored || a.TOTPSecret != "" {
			t.Errorf("Account(bob) = %+v, want nothing stored", a)
		}
		if st := mustSessionState(t, s, "bob"); st != (gateway.SessionState{}) {
			t.Errorf("SessionState(bob) = %+v, want zero", st)
		}
	})
}

func testEnrollment(t *testing.T, open func(t *testing.T) gateway.Store) {
	t.Run("pending enrollment is the same until it expires", func(t *testing.T) {
		s := open(t)
		create, calls := enrollFor(secretA, t0)
		first, err := s.PendingEnrollment("alice", t0, create)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []time.Time{t0, t0.Add(time.Minute), t0.Add(gateway.EnrollmentTTL - time.Nanosecond)} {
			again, err := s.PendingEnrollment("alice", at, create)
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
		if _, err := s.PendingEnrollment("alice", t0, create); err != nil {
			t.Fatal(err)
		}
		later := t0.Add(gateway.EnrollmentTTL)
		createB, calls := enrollFor(secretB, later)
		got, err := s.PendingEnrollment("alice", later, createB)
		if err != nil {
			t.Fatal(err)
		}
		if *calls != 1 || got.Secret != secretB || !got.Expires.Equal(later.Add(gateway.EnrollmentTTL)) {
			t.Errorf("got secret B=%v expires %v after %d calls, want the fresh enrollment", got.Secret == secretB, got.Expires, *calls)
		}
		if err := s.ConfirmEnrollment("alice", secretA, 1, nil, later); !errors.Is(err, gateway.ErrNoEnrollment) {
			t.Errorf("confirming the replaced secret: %v, want ErrNoEnrollment", err)
		}
	})
	t.Run("create failing stores nothing", func(t *testing.T) {
		s := open(t)
		boom := errors.New("no randomness")
		_, err := s.PendingEnrollment("alice", t0, func() (gateway.Enrollment, error) { return gateway.Enrollment{}, boom })
		if !errors.Is(err, boom) {
			t.Errorf("PendingEnrollment = %v, want the create error", err)
		}
		create, calls := enrollFor(secretA, t0)
		if _, err := s.PendingEnrollment("alice", t0, create); err != nil || *calls != 1 {
			t.Errorf("after a failed create: err %v, create called %d times, want a fresh one", err, *calls)
		}
	})
	t.Run("confirm enables totp and sets step, codes and flags at once", func(t *testing.T) {
		s := open(t)
		if err := s.ReplaceBackupCodes("alice", hashes("old")); err != nil {
			t.Fatal(err)
		}
		if err := s.UseBackupCode("alice", hashes("old")[0]); err != nil {
			t.Fatal(err)
		}
		create, _ := enrollFor(secretA, t0)
		if _, err := s.PendingEnrollment("alice", t0, create); err != nil {
			t.Fatal(err)
		}
		if err := s.ConfirmEnrollment("alice", secretA, 12345, hashes("a", "b"), t0.Add(time.Minute)); err != nil {
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
		if err := s.ConfirmEnrollment("alice", secretA, 12346, nil, t0.Add(time.Minute)); !errors.Is(err, gateway.ErrNoEnrollment) {
			t.Errorf("second confirm = %v, want ErrNoEnrollment (pending removed)", err)
		}
		create2, calls := enrollFor(secretB, t0)
		if _, err := s.PendingEnrollment("alice", t0.Add(time.Minute), create2); err != nil || *calls != 1 {
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
					if _, err := s.PendingEnrollment("alice", t0, create); err != nil {
						t.Fatal(err)
					}
				}
				err := s.ConfirmEnrollment("alice", tt.secret, 7, hashes("a"), tt.at)
				if !errors.Is(err, gateway.ErrNoEnrollment) {
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
		if _, err := s.PendingEnrollment("alice", t0.Add(time.Hour), create); err != nil {
			t.Fatal(err)
		}
		if a := mustAccount(t, s, "alice"); a.TOTPSecret != secretA {
			t.Error("a pending re-enrollment replaced the enabled secret")
		}
		if err := s.ConfirmEnrollment("alice", secretB, 200, hashes("b"), t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if a := mustAccount(t, s, "alice"); a.TOTPSecret != secretB || !equalCodes(a.BackupCodes, hashes("b")) {
			t.Error("confirming the re-enrollment did not replace secret and codes")
		}
	})
}

func testAcceptStep(t *testing.T, open func(t *testing.T) gateway.Store) {
	t.Run("only a step later than the last accepted one is accepted", func(t *testing.T) {
		tests := []struct {
			step int64
			want error
		}{
			{0, gateway.ErrStepReused},
			{99, gateway.ErrStepReused},
			{100, gateway.ErrStepReused},
			{101, nil},
			{5000, nil},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("step %d after 100", tt.step), func(t *testing.T) {
				s := open(t)
				enroll(t, s, "alice", nil)
				if err := s.AcceptStep("alice", tt.step); !errors.Is(err, tt.want) {
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
		if err := s.AcceptStep("alice", 101); err != nil {
			t.Fatal(err)
		}
		if err := s.AcceptStep("alice", 101); !errors.Is(err, gateway.ErrStepReused) {
			t.Errorf("second AcceptStep(101) = %v, want ErrStepReused", err)
		}
	})
	t.Run("the same step offered concurrently is accepted exactly once", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", nil)
		ok := concurrently(t, 50, gateway.ErrStepReused, func() error { return s.AcceptStep("alice", 101) })
		if ok != 1 {
			t.Errorf("%d of 50 concurrent AcceptStep(101) succeeded, want exactly 1", ok)
		}
	})
	t.Run("steps of one user do not block another", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", nil)
		enroll(t, s, "bob", nil)
		if err := s.AcceptStep("alice", 101); err != nil {
			t.Fatal(err)
		}
		if err := s.AcceptStep("bob", 101); err != nil {
			t.Errorf("AcceptStep(bob, 101) = %v after alice used 101", err)
		}
	})
}

func testBackupCodes(t *testing.T, open func(t *testing.T) gateway.Store) {
	t.Run("a used code is removed and must-regenerate is set", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", hashes("a", "b", "c"))
		if err := s.UseBackupCode("alice", hashes("b")[0]); err != nil {
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
				if err := s.UseBackupCode("alice", hashes("a")[0]); err != nil {
					t.Fatal(err)
				}
				if err := s.UseBackupCode(tt.user, tt.hash); !errors.Is(err, gateway.ErrCodeUsed) {
					t.Errorf("UseBackupCode = %v, want ErrCodeUsed", err)
				}
				if a := mustAccount(t, s, "alice"); !equalCodes(a.BackupCodes, hashes("b")) {
					t.Errorf("a refused code changed alice's codes: %q", a.BackupCodes)
				}
			})
		}
	})
	t.Run("the same code used concurrently succeeds exactly once", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", hashes("a", "b"))
		ok := concurrently(t, 50, gateway.ErrCodeUsed, func() error { return s.UseBackupCode("alice", hashes("a")[0]) })
		if ok != 1 {
			t.Errorf("%d of 50 concurrent uses of one code succeeded, want exactly 1", ok)
		}
		if a := mustAccount(t, s, "alice"); !equalCodes(a.BackupCodes, hashes("b")) || !a.MustRegenerate {
			t.Errorf("after concurrent use: codes %q, must regenerate %v", a.BackupCodes, a.MustRegenerate)
		}
	})
	t.Run("replacing the codes voids every old one and clears must-regenerate", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", hashes("a", "b"))
		if err := s.UseBackupCode("alice", hashes("a")[0]); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceBackupCodes("alice", hashes("c", "d")); err != nil {
			t.Fatal(err)
		}
		a := mustAccount(t, s, "alice")
		if !equalCodes(a.BackupCodes, hashes("c", "d")) || a.MustRegenerate || a.TOTPSecret != secretA {
			t.Errorf("after replace: codes %q, must regenerate %v, secret kept %v", a.BackupCodes, a.MustRegenerate, a.TOTPSecret == secretA)
		}
		if err := s.UseBackupCode("alice", hashes("b")[0]); !errors.Is(err, gateway.ErrCodeUsed) {
			t.Errorf("old code after replace: %v, want ErrCodeUsed", err)
		}
		if err := s.UseBackupCode("alice", hashes("d")[0]); err != nil {
			t.Errorf("new code after replace: %v", err)
		}
	})
}

func testDisableTOTP(t *testing.T, open func(t *testing.T) gateway.Store) {
	t.Run("disable removes secret, codes and pending enrollment and clears must-regenerate", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", hashes("a", "b"))
		if err := s.UseBackupCode("alice", hashes("a")[0]); err != nil {
			t.Fatal(err)
		}
		create, _ := enrollFor(secretB, t0)
		if _, err := s.PendingEnrollment("alice", t0, create); err != nil {
			t.Fatal(err)
		}
		gen, err := s.BumpGeneration("alice")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DisableTOTP("alice"); err != nil {
			t.Fatalf("DisableTOTP: %v", err)
		}
		a := mustAccount(t, s, "alice")
		if a.TOTPSecret != "" || len(a.BackupCodes) != 0 || a.MustRegenerate || a.Generation != gen {
			t.Errorf("after disable: secret set %v, %d codes, must regenerate %v, generation %d (want %d)",
				a.TOTPSecret != "", len(a.BackupCodes), a.MustRegenerate, a.Generation, gen)
		}
		if st := mustSessionState(t, s, "alice"); st != (gateway.SessionState{Generation: gen}) {
			t.Errorf("SessionState after disable = %+v", st)
		}
		if err := s.ConfirmEnrollment("alice", secretB, 300, nil, t0); !errors.Is(err, gateway.ErrNoEnrollment) {
			t.Errorf("confirming the enrollment pending before disable: %v, want ErrNoEnrollment", err)
		}
	})
	t.Run("disable of a user without totp succeeds", func(t *testing.T) {
		s := open(t)
		if err := s.DisableTOTP("nobody"); err != nil {
			t.Errorf("DisableTOTP(nobody) = %v", err)
		}
		if st := mustSessionState(t, s, "nobody"); st != (gateway.SessionState{}) {
			t.Errorf("SessionState(nobody) = %+v, want zero", st)
		}
	})
}

func testBumpGeneration(t *testing.T, open func(t *testing.T) gateway.Store) {
	t.Run("each bump returns a higher generation that session state reports", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "alice", nil)
		var last uint64
		for range 3 {
			gen, err := s.BumpGeneration("alice")
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
		gen, err := s.BumpGeneration("nobody")
		if err != nil || gen == 0 {
			t.Fatalf("BumpGeneration(nobody) = %d, %v; want > 0", gen, err)
		}
		if st := mustSessionState(t, s, "nobody"); st.Generation != gen {
			t.Errorf("SessionState(nobody).Generation = %d, want %d", st.Generation, gen)
		}
	})
	t.Run("concurrent bumps each return a distinct generation", func(t *testing.T) {
		s := open(t)
		var mu sync.Mutex
		seen := map[uint64]bool{}
		concurrently(t, 20, nil, func() error {
			gen, err := s.BumpGeneration("alice")
			mu.Lock()
			defer mu.Unlock()
			if seen[gen] {
				return fmt.Errorf("generation %d returned twice", gen)
			}
			seen[gen] = true
			return err
		})
	})
}

func testSessionKeys(t *testing.T, open func(t *testing.T) gateway.Store) {
	keys := func(hash, block string, calls *int) func() ([]byte, []byte, error) {
		return func() ([]byte, []byte, error) {
			*calls++
			return []byte(hash), []byte(block), nil
		}
	}
	t.Run("keys are generated once and then returned", func(t *testing.T) {
		s := open(t)
		var calls int
		h1, b1, err := s.SessionKeys(keys("hash-key-one-32-bytes-long......", "block-key-one-32-bytes-long.....", &calls))
		if err != nil {
			t.Fatal(err)
		}
		h2, b2, err := s.SessionKeys(keys("hash-key-two", "block-key-two", &calls))
		if err != nil {
			t.Fatal(err)
		}
		if calls != 1 || !bytes.Equal(h1, h2) || !bytes.Equal(b1, b2) || string(h1) != "hash-key-one-32-bytes-long......" || string(b1) != "block-key-one-32-bytes-long....." {
			t.Errorf("generate called %d times; second call returned other keys: %v", calls, !bytes.Equal(h1, h2))
		}
		h2[0] ^= 0xff // must not reach the store
		h3, _, err := s.SessionKeys(keys("x", "y", &calls))
		if err != nil || !bytes.Equal(h3, h1) {
			t.Errorf("changing a returned key changed the stored one (err %v)", err)
		}
	})
	t.Run("a generate error stores nothing", func(t *testing.T) {
		s := open(t)
		boom := errors.New("no randomness")
		if _, _, err := s.SessionKeys(func() ([]byte, []byte, error) { return nil, nil, boom }); !errors.Is(err, boom) {
			t.Errorf("SessionKeys = %v, want the generate error", err)
		}
		var calls int
		if h, _, err := s.SessionKeys(keys("h", "b", &calls)); err != nil || calls != 1 || string(h) != "h" {
			t.Errorf("after a failed generate: err %v, %d calls, want fresh keys", err, calls)
		}
	})
	t.Run("concurrent first calls all get the same keys", func(t *testing.T) {
		s := open(t)
		var (
			mu    sync.Mutex
			n     int
			first []byte
		)
		concurrently(t, 20, nil, func() error {
			h, _, err := s.SessionKeys(func() ([]byte, []byte, error) {
				mu.Lock()
				defer mu.Unlock()
				n++
				return fmt.Appendf(nil, "hash-%d", n), []byte("block"), nil
			})
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if first == nil {
				first = h
			} else if !bytes.Equal(first, h) {
				return fmt.Errorf("got %q after %q", h, first)
			}
			return nil
		})
	})
}
