package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// testUpdateAccount holds UpdateAccount to its contract: what fn leaves is
// saved whole, an error saves nothing, and SessionState follows each save.
func testUpdateAccount(t *testing.T, open func(t *testing.T) account.Store) {
	full := func(a *account.Account) {
		a.PasswordHash = []byte("$2a$04$fakepasswordhash")
		a.TOTPSecret = SecretA
		a.LastStep = 77
		a.BackupCodes = Hashes("a", "b")
		a.MustRegenerate = true
		a.Generation = 5
		a.Pending = &account.Enrollment{Secret: SecretB, Expires: T0.Add(time.Hour), Session: 11}
		a.Revoked = []account.Revocation{{ID: 9, Until: T0.Add(2 * time.Hour)}}
		a.RecoverySession = 13
		a.ConfigUser = true
	}
	t.Run("every field fn sets is saved and read back", func(t *testing.T) {
		s := open(t)
		if err := s.UpdateAccount("alice", func(a *account.Account) error {
			if a.Stored || a.Name != "alice" {
				t.Errorf("fn got %+v for an unknown user, want Account{Name: alice}", a)
			}
			full(a)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := account.Account{Name: "alice", Stored: true}
		full(&want)
		got := MustAccount(t, s, "alice")
		if got.Pending == nil || !got.Pending.Expires.Equal(want.Pending.Expires) || len(got.Revoked) != 1 || !got.Revoked[0].Until.Equal(want.Revoked[0].Until) {
			t.Fatalf("Account = %+v, want %+v", got, want)
		}
		// Times compare by instant; the rest by value.
		got.Pending.Expires, got.Revoked[0].Until = want.Pending.Expires, want.Revoked[0].Until
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Account = %+v, want %+v", got, want)
		}
		if st := MustSessionState(t, s, "alice"); st != account.SessionStateOf(want) {
			t.Errorf("SessionState = %+v, want SessionStateOf the account %+v", st, account.SessionStateOf(want))
		}
	})
	t.Run("an error from fn saves nothing and is returned unchanged", func(t *testing.T) {
		s := open(t)
		if err := s.UpdateAccount("alice", func(a *account.Account) error { a.LastStep = 1; return nil }); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("refused")
		err := s.UpdateAccount("alice", func(a *account.Account) error {
			full(a)
			return boom
		})
		if err != boom {
			t.Errorf("UpdateAccount = %v, want the error fn returned, unchanged", err)
		}
		if a := MustAccount(t, s, "alice"); a.LastStep != 1 || a.TOTPSecret != "" || a.Generation != 0 {
			t.Errorf("a refused update changed the account: %+v", a)
		}
		if st := MustSessionState(t, s, "alice"); st != (account.SessionState{}) {
			t.Errorf("a refused update changed the session state: %+v", st)
		}
	})
	t.Run("a removed account is gone but its generation stays", func(t *testing.T) {
		s := open(t)
		if err := s.UpdateAccount("alice", func(a *account.Account) error { full(a); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateAccount("alice", func(a *account.Account) error { return a.Remove() }); err != nil {
			t.Fatal(err)
		}
		a := MustAccount(t, s, "alice")
		if a.Stored || a.TOTPSecret != "" || a.PasswordHash != nil || a.Generation != 6 {
			t.Errorf("Account after removal = %+v, want nothing stored but generation 6", a)
		}
		if st := MustSessionState(t, s, "alice"); st != (account.SessionState{Generation: 6}) {
			t.Errorf("SessionState after removal = %+v, want generation 6 only", st)
		}
		if list, err := s.Accounts(); err != nil || len(list) != 0 {
			t.Errorf("Accounts after removal = %+v, %v; want none", list, err)
		}
		if err := s.UpdateAccount("alice", func(a *account.Account) error { return a.Remove() }); !errors.Is(err, account.ErrNotFound) {
			t.Errorf("second removal = %v, want ErrNotFound", err)
		}
		if _, err := account.BumpGeneration(s, "alice"); err != nil {
			t.Fatal(err)
		}
		if a := MustAccount(t, s, "alice"); !a.Stored || a.Generation != 7 {
			t.Errorf("the name added again has generation %d (stored %v), want 7", a.Generation, a.Stored)
		}
	})
	t.Run("accounts are listed in name order", func(t *testing.T) {
		s := open(t)
		for _, name := range []string{"carol", "alice", "bob"} {
			if err := s.UpdateAccount(name, func(a *account.Account) error { a.LastStep = 1; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		Enroll(t, s, "dave", Hashes("x"))
		list, err := s.Accounts()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range list {
			names = append(names, a.Name)
		}
		if !reflect.DeepEqual(names, []string{"alice", "bob", "carol", "dave"}) || list[3].TOTPSecret != account.SecretWithheld || !list[3].Stored {
			t.Errorf("Accounts = %+v, want alice, bob, carol, dave with dave's secret withheld", list)
		}
	})
}

// testUpdateCounters holds UpdateCounters, Counters and PruneCounters to
// their contract.
func testUpdateCounters(t *testing.T, open func(t *testing.T) account.Store) {
	c := func(key string, failures int) account.Counter {
		return account.Counter{Key: key, WindowStart: T0, Failures: failures}
	}
	set := func(t *testing.T, s account.Store, cs ...account.Counter) {
		t.Helper()
		var keys []string
		for _, c := range cs {
			keys = append(keys, c.Key)
		}
		if err := s.UpdateCounters(keys, func(m map[string]*account.Counter) error {
			for _, c := range cs {
				*m[c.Key] = c
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(t *testing.T, s account.Store) []account.Counter {
		t.Helper()
		cs, err := s.Counters()
		if err != nil {
			t.Fatal(err)
		}
		for i := range cs {
			cs[i].WindowStart = cs[i].WindowStart.UTC()
			cs[i].LockedUntil = cs[i].LockedUntil.UTC()
		}
		return cs
	}
	t.Run("missing counters are zero and saved ones read back", func(t *testing.T) {
		s := open(t)
		err := s.UpdateCounters([]string{"user:a", "ip:b"}, func(m map[string]*account.Counter) error {
			if len(m) != 2 || *m["user:a"] != (account.Counter{Key: "user:a"}) || *m["ip:b"] != (account.Counter{Key: "ip:b"}) {
				t.Errorf("fn got %v, want two counters with only their keys", m)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if cs := list(t, s); len(cs) != 0 {
			t.Errorf("empty counters were stored: %+v", cs)
		}
		set(t, s, c("user:a", 2), account.Counter{Key: "ip:b", WindowStart: T0, InFlight: 1, LockedUntil: T0.Add(time.Hour)})
		if cs := list(t, s); !reflect.DeepEqual(cs, []account.Counter{
			{Key: "ip:b", WindowStart: T0, InFlight: 1, LockedUntil: T0.Add(time.Hour)}, c("user:a", 2),
		}) {
			t.Errorf("Counters = %+v", cs)
		}
	})
	t.Run("Counter reads one counter as committed", func(t *testing.T) {
		s := open(t)
		if got, err := s.Counter("user:a"); err != nil || got != (account.Counter{Key: "user:a"}) {
			t.Errorf("Counter of a missing key = %+v, %v; want only its key", got, err)
		}
		locked := account.Counter{Key: "user:a", WindowStart: T0, Failures: 3, LockedUntil: T0.Add(time.Hour)}
		set(t, s, locked, c("user:b", 1))
		got, err := s.Counter("user:a")
		if err != nil {
			t.Fatal(err)
		}
		got.WindowStart, got.LockedUntil = got.WindowStart.UTC(), got.LockedUntil.UTC()
		if got != locked {
			t.Errorf("Counter = %+v, want %+v", got, locked)
		}
	})
	t.Run("a counter left empty is deleted", func(t *testing.T) {
		s := open(t)
		set(t, s, c("user:a", 2), c("user:b", 1))
		set(t, s, account.Counter{Key: "user:a"})
		if cs := list(t, s); !reflect.DeepEqual(cs, []account.Counter{c("user:b", 1)}) {
			t.Errorf("Counters = %+v, want user:b only", cs)
		}
	})
	t.Run("an error from fn saves no counter and is returned unchanged", func(t *testing.T) {
		s := open(t)
		set(t, s, c("user:a", 1))
		boom := errors.New("refused")
		err := s.UpdateCounters([]string{"user:a", "ip:b"}, func(m map[string]*account.Counter) error {
			m["user:a"].Failures = 9
			m["ip:b"].Failures = 9
			return boom
		})
		if err != boom {
			t.Errorf("UpdateCounters = %v, want the error fn returned, unchanged", err)
		}
		if cs := list(t, s); !reflect.DeepEqual(cs, []account.Counter{c("user:a", 1)}) {
			t.Errorf("a refused update changed the counters: %+v", cs)
		}
	})
	t.Run("prune deletes exactly what drop picks", func(t *testing.T) {
		s := open(t)
		set(t, s, c("user:a", 1), c("user:b", 2), c("ip:c", 3))
		n, err := s.PruneCounters(func(c account.Counter) bool { return c.Failures != 2 })
		if err != nil || n != 2 {
			t.Fatalf("PruneCounters = %d, %v; want 2", n, err)
		}
		if cs := list(t, s); !reflect.DeepEqual(cs, []account.Counter{c("user:b", 2)}) {
			t.Errorf("Counters after prune = %+v, want user:b only", cs)
		}
	})
}
