package caddymodule

import (
	"net/http"
	"strings"
	"testing"

	"github.com/totp-auth/totp_auth/gateway/account"
)

func TestOperations_SignOutEndsTheSessionsOfCaddyfileAndDatabaseUsers(t *testing.T) {
	d := testDatabase(t, "carol")
	if _, err := d.users().Add("bob", mustHash(t, "pw-of-bob")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"carol", "Bob"} {
		before := generation(t, d, strings.ToLower(name))
		r, err := d.users().SignOut(name)
		if err != nil {
			t.Fatalf("signout %s: %v", name, err)
		}
		if !strings.Contains(r.Message, "out everywhere") {
			t.Errorf("message %q", r.Message)
		}
		if generation(t, d, strings.ToLower(name)) <= before {
			t.Errorf("signout left %s's sessions valid", name)
		}
	}
	if _, err := d.users().SignOut("nobody"); refusal(t, err) != http.StatusNotFound {
		t.Errorf("signout of no user: %v", err)
	}
}

func TestConfigUsers_ARemovedLineEndsSessionsForGood(t *testing.T) {
	d := testDatabase(t, "carol", "dave")
	for _, u := range []string{"carol", "dave"} {
		if a, err := d.db.Account(u); err != nil || !a.ConfigUser {
			t.Fatalf("%s not remembered as defined by a `user` line: %+v %v", u, a, err)
		}
	}
	before := generation(t, d, "dave")
	ended, err := account.ForgetConfigUsers(d.db, map[string]bool{"carol": true})
	if err != nil || len(ended) != 1 || ended[0] != "dave" {
		t.Fatalf("ForgetConfigUsers = %v, %v; want dave signed out", ended, err)
	}
	if generation(t, d, "dave") <= before || generation(t, d, "carol") != 0 {
		t.Fatal("dave's sessions still valid, or carol's ended")
	}
	// The line comes back: nothing more ends, and dave's old generation
	// stays behind him.
	if err := account.MarkConfigUsers(d.db, map[string]bool{"dave": true}); err != nil {
		t.Fatal(err)
	}
	if ended, _ := account.ForgetConfigUsers(d.db, map[string]bool{"carol": true, "dave": true}); len(ended) != 0 {
		t.Fatalf("signed out %v although every line is there", ended)
	}
	if generation(t, d, "dave") != before+1 {
		t.Fatal("adding the line back brought the old generation back")
	}
}
