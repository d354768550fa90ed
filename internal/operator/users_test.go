package operator

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/memstore"
)

// lock locks the counter under key until an hour after t0.
func lock(t *testing.T, s account.Store, key string) {
	t.Helper()
	err := s.UpdateCounters([]string{key}, func(cs map[string]*account.Counter) error {
		cs[key].WindowStart, cs[key].Failures, cs[key].LockedUntil = t0, 5, t0.Add(time.Hour)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func names(l Listing) []string {
	var out []string
	for _, u := range l.Users {
		out = append(out, u.Name)
	}
	return out
}

func TestListPage_PagesFollowedFromTheStartListWhatListDoes(t *testing.T) {
	s := memstore.New()
	for i := range 1200 { // more than one batch of the store
		if err := SetPassword(s, fmt.Sprintf("user%04d", i), []byte("$2a$14$hash")); err != nil {
			t.Fatal(err)
		}
	}
	// `user` lines before, between and after the stored names.
	config := map[string]bool{"aaron": true, "user0500x": true, "zoe": true}
	u := &Users{Store: s, DB: "mem", ConfigUsers: func() (map[string]bool, bool) { return config, true }}
	lock(t, s, account.UserCounter.Key("user0999"))
	lock(t, s, account.UserCounter.Key("nobody"))
	lock(t, s, account.IPCounter.Key("192.0.2.1"))

	all, err := u.List(t0)
	if err != nil {
		t.Fatal(err)
	}
	var paged []UserReport
	q := ListQuery{Limit: 250}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("the pages do not end")
		}
		l, err := u.ListPage(t0, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Users) > q.Limit {
			t.Fatalf("page of %d users, limit %d", len(l.Users), q.Limit)
		}
		if pages == 0 {
			if !reflect.DeepEqual(l.LockedClientIPs, all.LockedClientIPs) || !reflect.DeepEqual(l.LockedUnknownNames, all.LockedUnknownNames) {
				t.Errorf("first page's locks %+v %+v, want %+v %+v", l.LockedClientIPs, l.LockedUnknownNames, all.LockedClientIPs, all.LockedUnknownNames)
			}
		} else if len(l.LockedClientIPs)+len(l.LockedUnknownNames) > 0 {
			t.Errorf("page %d repeats the locks that are no user's", pages)
		}
		paged = append(paged, l.Users...)
		if l.Next == "" {
			break
		}
		q.After = l.Next
	}
	if !reflect.DeepEqual(paged, all.Users) {
		t.Errorf("the pages list %d users, List %d; first names %q / %q", len(paged), len(all.Users), names(Listing{Users: paged[:3]}), names(Listing{Users: all.Users[:3]}))
	}
	if len(all.Users) != 1203 || len(all.LockedUnknownNames) != 1 || all.LockedUnknownNames[0].Name != "nobody" {
		t.Errorf("List has %d users and unknown names %+v; want 1203 and nobody", len(all.Users), all.LockedUnknownNames)
	}
}

func TestListPage_MatchKeepsTheNamesThatContainIt(t *testing.T) {
	s := memstore.New()
	for _, name := range []string{"alice", "bob", "malika", "zed"} {
		if err := SetPassword(s, name, []byte("$2a$14$hash")); err != nil {
			t.Fatal(err)
		}
	}
	u := &Users{Store: s, DB: "mem", ConfigUsers: func() (map[string]bool, bool) { return map[string]bool{"alina": true, "carol": true}, true }}
	lock(t, s, account.UserCounter.Key("bob"))
	l, err := u.ListPage(t0, ListQuery{Match: "Li", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(l); !reflect.DeepEqual(got, []string{"alice", "alina"}) || l.Next != "alina" {
		t.Fatalf("first page of match li = %q next %q, want alice, alina and more", got, l.Next)
	}
	if len(l.LockedUnknownNames) != 0 {
		t.Errorf("bob, a user the filter leaves out, is listed as an unknown name: %+v", l.LockedUnknownNames)
	}
	l, err = u.ListPage(t0, ListQuery{Match: "li", After: l.Next, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(l); !reflect.DeepEqual(got, []string{"malika"}) || l.Next != "" {
		t.Errorf("second page = %q next %q, want malika and the end", got, l.Next)
	}
}
