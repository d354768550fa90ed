package storetest

import (
	"reflect"
	"sort"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// testConfigUsers holds ConfigUsers to its contract: the marked names, in
// name order, following every change of the mark and every removal.
func testConfigUsers(t *testing.T, open func(t *testing.T) account.Store) {
	mark := func(t *testing.T, s account.Store, user string, on bool) {
		t.Helper()
		if err := s.UpdateAccount(user, func(a *account.Account) error { a.ConfigUser = on; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	want := func(t *testing.T, s account.Store, names ...string) {
		t.Helper()
		got, err := s.ConfigUsers()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 || len(names) != 0 {
			if !reflect.DeepEqual(got, names) {
				t.Errorf("ConfigUsers = %q, want %q", got, names)
			}
		}
	}
	t.Run("marked names in name order", func(t *testing.T) {
		s := open(t)
		want(t, s)
		for _, name := range []string{"dave", "bob", "carol"} {
			mark(t, s, name, true)
		}
		if err := s.UpdateAccount("erin", func(a *account.Account) error { a.LastStep = 1; return nil }); err != nil {
			t.Fatal(err)
		}
		want(t, s, "bob", "carol", "dave")
	})
	t.Run("an unmarked or removed name is gone", func(t *testing.T) {
		s := open(t)
		for _, name := range []string{"bob", "carol", "dave"} {
			mark(t, s, name, true)
		}
		mark(t, s, "carol", false)
		if err := s.UpdateAccount("dave", func(a *account.Account) error { return a.Remove() }); err != nil {
			t.Fatal(err)
		}
		want(t, s, "bob")
		mark(t, s, "dave", true)
		want(t, s, "bob", "dave")
	})
	t.Run("a refused update changes nothing", func(t *testing.T) {
		s := open(t)
		err := s.UpdateAccount("bob", func(a *account.Account) error { a.ConfigUser = true; return account.ErrNotFound })
		if err == nil {
			t.Fatal("the refusal was lost")
		}
		want(t, s)
	})
}

// testPasswordModels holds PasswordModels to its contract: one model per
// kind of stored password hash, following new, changed and removed hashes.
func testPasswordModels(t *testing.T, open func(t *testing.T) account.Store) {
	hash := func(t *testing.T, cost int) []byte {
		t.Helper()
		h, err := bcrypt.GenerateFromPassword([]byte("pw"), cost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	const argon = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	set := func(t *testing.T, s account.Store, user string, h []byte) {
		t.Helper()
		if err := s.UpdateAccount(user, func(a *account.Account) error { a.SetPassword(h); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	want := func(t *testing.T, s account.Store, hashes ...[]byte) {
		t.Helper()
		got, err := s.PasswordModels()
		if err != nil {
			t.Fatal(err)
		}
		var models []string
		for _, h := range hashes {
			models = append(models, account.HashModel(h))
		}
		sort.Strings(got)
		sort.Strings(models)
		if len(got) != 0 || len(models) != 0 {
			if !reflect.DeepEqual(got, models) {
				t.Errorf("PasswordModels = %q, want %q", got, models)
			}
		}
	}
	t.Run("one model per kind of hash", func(t *testing.T) {
		s := open(t)
		want(t, s)
		cheap, cheap2, dearer := hash(t, bcrypt.MinCost), hash(t, bcrypt.MinCost), hash(t, bcrypt.MinCost+1)
		set(t, s, "alice", cheap)
		set(t, s, "bob", cheap2)
		want(t, s, cheap)
		set(t, s, "carol", dearer)
		set(t, s, "dave", []byte(argon))
		want(t, s, cheap, dearer, []byte(argon))
	})
	t.Run("a model goes with the last hash of its kind", func(t *testing.T) {
		s := open(t)
		cheap, dearer := hash(t, bcrypt.MinCost), hash(t, bcrypt.MinCost+1)
		set(t, s, "alice", cheap)
		set(t, s, "bob", dearer)
		set(t, s, "carol", dearer)
		if err := s.UpdateAccount("bob", func(a *account.Account) error { return a.Remove() }); err != nil {
			t.Fatal(err)
		}
		want(t, s, cheap, dearer)
		set(t, s, "carol", cheap) // a changed password
		want(t, s, cheap)
		if err := s.UpdateAccount("alice", func(a *account.Account) error { return a.Remove() }); err != nil {
			t.Fatal(err)
		}
		want(t, s, cheap)
		if err := s.UpdateAccount("carol", func(a *account.Account) error { a.PasswordHash = nil; return nil }); err != nil {
			t.Fatal(err)
		}
		want(t, s)
	})
	t.Run("a refused update changes nothing", func(t *testing.T) {
		s := open(t)
		err := s.UpdateAccount("bob", func(a *account.Account) error { a.SetPassword(hash(t, bcrypt.MinCost)); return account.ErrNotFound })
		if err == nil {
			t.Fatal("the refusal was lost")
		}
		want(t, s)
	})
}

// testAccountsAfter holds AccountsAfter to its contract: pages in name
// order that, followed from "", list what Accounts lists, each once.
func testAccountsAfter(t *testing.T, open func(t *testing.T) account.Store) {
	s := open(t)
	if list, err := s.AccountsAfter("", 10); err != nil || len(list) != 0 {
		t.Fatalf("AccountsAfter on an empty store = %+v, %v; want none", list, err)
	}
	for _, name := range []string{"erin", "alice", "dave", "bob", "carol"} {
		if err := s.UpdateAccount(name, func(a *account.Account) error { a.LastStep = 1; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	Enroll(t, s, "frank", Hashes("x"))
	if _, err := account.BumpGeneration(s, "zed"); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateAccount("zed", func(a *account.Account) error { return a.Remove() }); err != nil {
		t.Fatal(err)
	}
	var pages [][]string
	after := ""
	for range 10 {
		list, err := s.AccountsAfter(after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			break
		}
		var names []string
		for _, a := range list {
			names = append(names, a.Name)
			if !a.Stored || a.Name == "frank" && a.TOTPSecret != account.SecretWithheld {
				t.Errorf("AccountsAfter gave %+v, want it stored with its secret withheld", a)
			}
		}
		pages = append(pages, names)
		after = names[len(names)-1]
	}
	want := [][]string{{"alice", "bob"}, {"carol", "dave"}, {"erin", "frank"}}
	if !reflect.DeepEqual(pages, want) {
		t.Errorf("pages of 2 = %q, want %q (in name order, the removed zed left out)", pages, want)
	}
	if list, err := s.AccountsAfter("c", 1); err != nil || len(list) != 1 || list[0].Name != "carol" {
		t.Errorf("AccountsAfter(c, 1) = %+v, %v; want carol: after need not be a stored name", list, err)
	}
}
