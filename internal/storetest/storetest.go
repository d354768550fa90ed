// Package storetest is the conformance suite for account.Store. Every Store
// implementation runs it from its own tests: it holds each store to the
// atomicity, persistence and isolation that account.Store documents, and to
// the concurrency the gateway's rules rely on (100 parallel guesses get at
// most max slots, a backup code or a TOTP step is accepted once). The rules
// themselves are tested once, in package account.
//
// Anything an implementation adds (encryption, files, operator functions)
// is tested beside that implementation.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
)

// Run runs every conformance test against stores made by open. open is
// called once per subtest and must return an empty store; it should close
// the store with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("Account", func(t *testing.T) { testAccount(t, open) })
	t.Run("UpdateAccount", func(t *testing.T) { testUpdateAccount(t, open) })
	t.Run("UpdateCounters", func(t *testing.T) { testUpdateCounters(t, open) })
	t.Run("AcceptStep", func(t *testing.T) { testAcceptStep(t, open) })
	t.Run("BackupCodes", func(t *testing.T) { testBackupCodes(t, open) })
	t.Run("BumpGeneration", func(t *testing.T) { testBumpGeneration(t, open) })
	t.Run("Lockout", func(t *testing.T) { testConcurrentAttempts(t, open) })
	t.Run("SessionKeys", func(t *testing.T) { testSessionKeys(t, open) })
	t.Run("Passkeys", func(t *testing.T) { testPasskeys(t, open) })
	t.Run("ConfigUsers", func(t *testing.T) { testConfigUsers(t, open) })
	t.Run("PasswordModels", func(t *testing.T) { testPasswordModels(t, open) })
	t.Run("AccountsAfter", func(t *testing.T) { testAccountsAfter(t, open) })
	t.Run("AppPasswords", func(t *testing.T) { testAppPasswords(t, open) })
	t.Run("Registry", func(t *testing.T) { testRegistry(t, open) })
}

// T0 is a fixed instant so that every expiry in the suite is exact.
var T0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	SecretA = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	SecretB = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
)

func Hashes(names ...string) [][]byte {
	out := make([][]byte, len(names))
	for i, n := range names {
		out[i] = []byte("$2a$10$fakehash." + n)
	}
	return out
}

// EnrollFor returns a create function handing out secret with expiry at
// now+gateway.EnrollmentTTL, and a counter of how often it was called.
func EnrollFor(secret string, now time.Time) (create func() (account.Enrollment, error), calls *int) {
	calls = new(int)
	create = func() (account.Enrollment, error) {
		*calls++
		return account.Enrollment{Secret: secret, Expires: now.Add(gateway.EnrollmentTTL)}, nil
	}
	return create, calls
}

// Enroll gives user an enabled TOTP secret, last step 100 and the codes.
func Enroll(t *testing.T, s account.Store, user string, codes [][]byte) {
	t.Helper()
	create, _ := EnrollFor(SecretA, T0)
	if _, err := account.EnrollmentFor(s, user, 0, T0, create); err != nil {
		t.Fatalf("PendingEnrollment: %v", err)
	}
	if err := account.ConfirmEnrollment(s, user, SecretA, 100, codes, T0.Add(time.Minute)); err != nil {
		t.Fatalf("ConfirmEnrollment: %v", err)
	}
}

func MustAccount(t *testing.T, s account.Store, user string) account.Account {
	t.Helper()
	a, err := s.Account(user)
	if err != nil {
		t.Fatalf("Account(%q): %v", user, err)
	}
	return a
}

func MustSessionState(t *testing.T, s account.Store, user string) account.SessionState {
	t.Helper()
	st, err := s.SessionState(user)
	if err != nil {
		t.Fatalf("SessionState(%q): %v", user, err)
	}
	return st
}

func EqualCodes(a, b [][]byte) bool {
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

// Concurrently runs f n times at once and returns how many calls returned
// nil; every other error must be want.
func Concurrently(t *testing.T, n int, want error, f func() error) int {
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

func testAccount(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("unknown user has an account with only the name", func(t *testing.T) {
		s := open(t)
		a := MustAccount(t, s, "nobody")
		if a.Name != "nobody" || a.Stored || a.PasswordHash != nil || a.TOTPSecret != "" ||
			a.LastStep != 0 || len(a.BackupCodes) != 0 || a.MustRegenerate || a.Generation != 0 {
			t.Errorf("Account(nobody) = %+v, want Account{Name: nobody}", a)
		}
	})
	t.Run("unknown user has the zero session state", func(t *testing.T) {
		s := open(t)
		if st := MustSessionState(t, s, "nobody"); st != (account.SessionState{}) {
			t.Errorf("SessionState(nobody) = %+v, want zero", st)
		}
	})
	t.Run("returned backup codes do not alias the stored ones", func(t *testing.T) {
		s := open(t)
		codes := Hashes("a", "b")
		Enroll(t, s, "alice", codes)
		codes[0][0] = 'X' // the caller reusing its slice must not change the store
		a := MustAccount(t, s, "alice")
		a.BackupCodes[1][0] = 'Y'
		if got := MustAccount(t, s, "alice"); !EqualCodes(got.BackupCodes, Hashes("a", "b")) {
			t.Errorf("stored codes changed through a caller's slice: %q", got.BackupCodes)
		}
	})
	t.Run("records of one user do not touch another", func(t *testing.T) {
		s := open(t)
		Enroll(t, s, "alice", Hashes("a"))
		if _, err := account.BumpGeneration(s, "alice"); err != nil {
			t.Fatal(err)
		}
		if a := MustAccount(t, s, "bob"); a.Stored || a.TOTPSecret != "" {
			t.Errorf("Account(bob) = %+v, want nothing stored", a)
		}
		if st := MustSessionState(t, s, "bob"); st != (account.SessionState{}) {
			t.Errorf("SessionState(bob) = %+v, want zero", st)
		}
	})
}

func testAcceptStep(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("the same step offered concurrently is accepted exactly once", func(t *testing.T) {
		s := open(t)
		Enroll(t, s, "alice", nil)
		ok := Concurrently(t, 50, account.ErrStepReused, func() error { return account.AcceptStep(s, "alice", 101) })
		if ok != 1 {
			t.Errorf("%d of 50 concurrent AcceptStep(101) succeeded, want exactly 1", ok)
		}
	})
}

func testBackupCodes(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("the same code used concurrently succeeds exactly once", func(t *testing.T) {
		s := open(t)
		Enroll(t, s, "alice", Hashes("a", "b"))
		ok := Concurrently(t, 50, account.ErrCodeUsed, func() error { return account.UseBackupCode(s, "alice", Hashes("a")[0]) })
		if ok != 1 {
			t.Errorf("%d of 50 concurrent uses of one code succeeded, want exactly 1", ok)
		}
		if a := MustAccount(t, s, "alice"); !EqualCodes(a.BackupCodes, Hashes("b")) || !a.MustRegenerate {
			t.Errorf("after concurrent use: codes %q, must regenerate %v", a.BackupCodes, a.MustRegenerate)
		}
	})
}

func testBumpGeneration(t *testing.T, open func(t *testing.T) account.Store) {
	t.Run("concurrent bumps each return a distinct generation", func(t *testing.T) {
		s := open(t)
		var mu sync.Mutex
		seen := map[uint64]bool{}
		Concurrently(t, 20, nil, func() error {
			gen, err := account.BumpGeneration(s, "alice")
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

func testSessionKeys(t *testing.T, open func(t *testing.T) account.Store) {
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
		Concurrently(t, 20, nil, func() error {
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
