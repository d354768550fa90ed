package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// AppPasswordFor is an app password with a fixed hash made from value, as
// the gateway would store it, for stores' tests.
func AppPasswordFor(id, value string, created time.Time) account.AppPassword {
	h := sha256.Sum256([]byte(value))
	return account.AppPassword{ID: id, Name: "Phone – " + id, Hash: h[:], Created: created,
		Expires: created.Add(24 * time.Hour), ReadOnly: true, PathPrefix: "/dav", Credential: 7}
}

// testAppPasswords holds a store to keeping app passwords whole, to
// answering them in SessionState after every change, and to forgetting
// them with the account.
func testAppPasswords(t *testing.T, open func(t *testing.T) account.Store) {
	s := open(t)
	one, two := AppPasswordFor("one", "v1", T0), AppPasswordFor("two", "v2", T0.Add(time.Minute))
	two.ReadOnly, two.PathPrefix, two.Expires = false, "", time.Time{}
	for _, p := range []account.AppPassword{one, two} {
		if err := account.AddAppPassword(s, "alice", p, T0); err != nil {
			t.Fatal(err)
		}
	}
	got := MustAccount(t, s, "alice").AppPasswords
	if len(got) != 2 || got[0].ID != "one" || got[1].ID != "two" || !bytes.Equal(got[0].Hash, one.Hash) ||
		!got[0].Created.Equal(T0) || !got[0].Expires.Equal(one.Expires) || !got[0].ReadOnly || got[0].PathPrefix != "/dav" ||
		got[0].Credential != 7 || got[1].ReadOnly || !got[1].Expires.IsZero() || got[0].Name != "Phone – one" {
		t.Fatalf("stored app passwords came back as %+v", got)
	}
	st := MustSessionState(t, s, "alice")
	g, ok := st.AppPassword(one.Hash)
	if !ok || g.ID != "one" || !g.ReadOnly || g.PathPrefix != "/dav" || !g.Expires.Equal(one.Expires) || g.Credential != 7 {
		t.Fatalf("SessionState answers %+v, %v for app password one", g, ok)
	}

	used := T0.Add(2 * time.Minute)
	if err := account.NoteAppPasswordUse(s, "alice", "two", used, "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	got = MustAccount(t, s, "alice").AppPasswords
	if !got[1].LastUsed.Equal(used) || got[1].LastUsedIP != "192.0.2.7" || !got[0].LastUsed.IsZero() {
		t.Fatalf("last use came back as %v from %q", got[1].LastUsed, got[1].LastUsedIP)
	}
	if after := MustSessionState(t, s, "alice"); after != st {
		t.Errorf("recording a use changed the session state")
	}

	if err := account.RevokeAppPassword(s, "alice", "one"); err != nil {
		t.Fatal(err)
	}
	if err := account.RevokeAppPassword(s, "alice", "one"); !errors.Is(err, account.ErrNoAppPassword) {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, ok := MustSessionState(t, s, "alice").AppPassword(one.Hash); ok {
		t.Fatal("a revoked app password is still in the session state")
	}
	if _, ok := MustSessionState(t, s, "alice").AppPassword(two.Hash); !ok {
		t.Fatal("revoking one app password lost the other")
	}

	// Removing the user forgets them for good: adding the name back
	// revives nothing.
	if err := s.UpdateAccount("alice", func(a *account.Account) error {
		a.SetPassword([]byte("$2a$10$fakehash.pw"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateAccount("alice", func(a *account.Account) error { return a.Remove() }); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateAccount("alice", func(a *account.Account) error {
		a.SetPassword([]byte("$2a$10$fakehash.pw"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if ps := MustAccount(t, s, "alice").AppPasswords; len(ps) != 0 {
		t.Fatalf("a user added again has %d app passwords", len(ps))
	}
	if _, ok := MustSessionState(t, s, "alice").AppPassword(two.Hash); ok {
		t.Fatal("a removed user's app password is still in the session state")
	}
}
