package operator

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/memstore"
)

func TestSessions_ListsTheRegistryAndEndSessionEndsOneByItsID(t *testing.T) {
	db := memstore.New()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, id := range []uint64{0xabc, 0xdef} {
		rec := account.SessionRecord{ID: id, Device: "Firefox on Linux", SignedIn: now, LastSeen: now, Expires: now.Add(time.Hour), Level: 2, Factor: "totp"}
		if err := account.RecordSession(db, "alice", 0, rec, now); err != nil {
			t.Fatal(err)
		}
	}
	u := &Users{Store: db, DB: "test"}
	l, err := u.Sessions("Alice", now)
	if err != nil || len(l.Sessions) != 2 || l.User != "alice" {
		t.Fatalf("Sessions = %+v, %v", l, err)
	}
	ids := map[string]bool{l.Sessions[0].ID: true, l.Sessions[1].ID: true}
	if !ids["0000000000000abc"] || !ids["0000000000000def"] {
		t.Errorf("ids %v, want 16 hex digits each", ids)
	}
	if _, err := u.EndSession("alice", "0000000000000abc", now); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.SessionState("alice"); !st.Revoked(0xabc) || st.Revoked(0xdef) {
		t.Error("EndSession did not revoke exactly that session")
	}
	for _, id := range []string{"0000000000000abc", "0000000000000fff", "abc", ""} {
		_, err := u.EndSession("alice", id, now)
		var r *Refusal
		if !errors.As(err, &r) || r.Status != http.StatusNotFound {
			t.Errorf("EndSession(%q) = %v, want a 404 refusal", id, err)
		}
	}
	if _, err := u.EndSession("bob", "0000000000000def", now); err == nil {
		t.Error("bob ended alice's session")
	}
}
