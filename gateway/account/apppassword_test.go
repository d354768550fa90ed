package account

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"
)

func appPassword(i int, now time.Time) AppPassword {
	h := sha256.Sum256([]byte(fmt.Sprint("value ", i)))
	return AppPassword{ID: fmt.Sprint("id", i), Name: fmt.Sprint("app ", i), Hash: h[:], Created: now,
		PathPrefix: fmt.Sprintf("/p%d", i), ReadOnly: i%2 == 0, Credential: uint64(i)}
}

func TestAppPassword_SessionStateFindsEachByItsHashOnly(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var a Account
	for i := 0; i < 5; i++ {
		p := appPassword(i, now)
		if i == 3 {
			p.Expires = now.Add(time.Hour)
		}
		if err := a.AddAppPassword(p, now); err != nil {
			t.Fatal(err)
		}
	}
	a.AppPasswords = append(a.AppPasswords, AppPassword{ID: "bad", Hash: []byte("short")})
	st := SessionStateOf(a)
	for i := 0; i < 5; i++ {
		p := appPassword(i, now)
		g, ok := st.AppPassword(p.Hash)
		if !ok || g.ID != p.ID || g.PathPrefix != p.PathPrefix || g.ReadOnly != p.ReadOnly || g.Credential != p.Credential {
			t.Errorf("app password %d: %+v, %v", i, g, ok)
		}
		if i == 3 != !g.Expires.IsZero() {
			t.Errorf("app password %d: expires %v", i, g.Expires)
		}
	}
	if _, ok := st.AppPassword([]byte("short")); ok {
		t.Error("a malformed stored hash matched")
	}
	wrong := sha256.Sum256([]byte("value 9"))
	if _, ok := st.AppPassword(wrong[:]); ok {
		t.Error("an unknown hash matched")
	}
	if _, ok := SessionStateOf(Account{Removed: true, AppPasswords: a.AppPasswords}).AppPassword(appPassword(0, now).Hash); ok {
		t.Error("a removed account's app password matched")
	}
}

func TestAppPassword_AddForgetsExpiredOnesAndStopsAtTheMaximum(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var a Account
	old := appPassword(100, now)
	old.Expires = now
	if err := a.AddAppPassword(old, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < MaxAppPasswords; i++ {
		if err := a.AddAppPassword(appPassword(i, now), now); err != nil {
			t.Fatalf("app password %d: %v", i, err)
		}
	}
	if len(a.AppPasswords) != MaxAppPasswords || a.AppPasswords[0].ID == old.ID {
		t.Fatalf("holds %d, first %s", len(a.AppPasswords), a.AppPasswords[0].ID)
	}
	if err := a.AddAppPassword(appPassword(999, now), now); !errors.Is(err, ErrTooManyAppPasswords) {
		t.Fatalf("one more: %v", err)
	}
	c := a.Clone()
	c.AppPasswords[0].Hash[0] ^= 1
	if bytes.Equal(c.AppPasswords[0].Hash, a.AppPasswords[0].Hash) {
		t.Error("Clone shares the hashes")
	}
	if err := a.NoteAppPasswordUse("id1", now, "192.0.2.1"); err != nil || a.AppPasswords[1].LastUsedIP != "192.0.2.1" {
		t.Fatalf("note use: %v", err)
	}
	if err := a.NoteAppPasswordUse("id1", now, "192.0.2.2"); err == nil {
		t.Error("a use no later than the recorded one was recorded again")
	}
	if err := a.RevokeAppPassword("id1"); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeAppPassword("id1"); !errors.Is(err, ErrNoAppPassword) {
		t.Fatalf("revoke twice: %v", err)
	}
	a.DisableTOTP()
	if len(a.AppPasswords) != 0 {
		t.Error("disabling two-factor authentication kept app passwords")
	}
}
