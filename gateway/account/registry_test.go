package account_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/memstore"
)

var r0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func record(id uint64, seen time.Time) account.SessionRecord {
	return account.SessionRecord{ID: id, SignedIn: seen, LastSeen: seen, Expires: seen.Add(12 * time.Hour), Level: 2, Factor: "totp"}
}

func TestRegistry_PastMaxSessionsTheLeastRecentlySeenIsEnded(t *testing.T) {
	var a account.Account
	for i := range account.MaxSessions {
		a.RecordSession(record(uint64(i+1), r0.Add(time.Duration(i)*time.Minute)), r0)
	}
	a.SeeSession(1, r0.Add(time.Hour)) // the first is the most recent now
	a.RecordSession(record(1000, r0.Add(2*time.Hour)), r0.Add(2*time.Hour))
	st := account.SessionStateOf(a)
	if len(a.Sessions) != account.MaxSessions || !st.Revoked(2) || st.Revoked(1) {
		t.Errorf("registry of %d, session 2 revoked %v, session 1 revoked %v; want %d, true, false",
			len(a.Sessions), st.Revoked(2), st.Revoked(1), account.MaxSessions)
	}
}

func TestRegistry_EndSessionRevokesUntilItsExpiry(t *testing.T) {
	var a account.Account
	a.RecordSession(record(7, r0), r0)
	if err := a.EndSession(7, r0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !account.SessionStateOf(a).Revoked(7) || len(a.Sessions) != 0 || !a.Revoked[0].Until.Equal(r0.Add(12*time.Hour)) {
		t.Errorf("after EndSession: revoked %v, sessions %v", a.Revoked, a.Sessions)
	}
	if err := a.EndSession(7, r0); err != account.ErrNotFound {
		t.Errorf("EndSession of an ended session = %v, want ErrNotFound", err)
	}
	a.RecordSession(record(8, r0), r0)
	if err := a.EndSession(8, r0.Add(12*time.Hour)); err != account.ErrNotFound {
		t.Errorf("EndSession of an expired session = %v, want ErrNotFound", err)
	}
}

func TestRegistry_EndSessionsForgetsSessionsAndDevices(t *testing.T) {
	var a account.Account
	a.RecordSession(record(7, r0), r0)
	a.RememberDevice(account.RememberedDevice{ID: 9, Created: r0, LastUsed: r0, Expires: r0.Add(time.Hour)}, r0)
	a.EndSessions()
	if a.Sessions != nil || a.Devices != nil {
		t.Errorf("after EndSessions: sessions %v, devices %v", a.Sessions, a.Devices)
	}
}

func TestRegistry_EndOtherSessionsKeepsOneAndTheDevices(t *testing.T) {
	var a account.Account
	for id := uint64(1); id <= 3; id++ {
		a.RecordSession(record(id, r0), r0)
	}
	a.RememberDevice(account.RememberedDevice{ID: 9, Created: r0, LastUsed: r0, Expires: r0.Add(time.Hour)}, r0)
	if n := a.EndOtherSessions(2, r0); n != 2 {
		t.Errorf("ended %d, want 2", n)
	}
	st := account.SessionStateOf(a)
	if !st.Revoked(1) || st.Revoked(2) || !st.Revoked(3) || len(a.Sessions) != 1 || len(a.Devices) != 1 {
		t.Errorf("after EndOtherSessions: revoked %v, sessions %v, devices %v", a.Revoked, a.Sessions, a.Devices)
	}
}

func TestRegistry_PastMaxDevicesTheLeastRecentlyUsedIsForgotten(t *testing.T) {
	var a account.Account
	for i := range account.MaxDevices + 1 {
		at := r0.Add(time.Duration(i) * time.Minute)
		a.RememberDevice(account.RememberedDevice{ID: uint64(i + 1), Created: at, LastUsed: at, Expires: at.Add(time.Hour)}, at)
	}
	if _, ok := a.DeviceAt(1, r0); ok || len(a.Devices) != account.MaxDevices {
		t.Errorf("%d devices, the oldest still there: %v", len(a.Devices), ok)
	}
}

func TestRegistry_SeeSessionOnlyMovesForward(t *testing.T) {
	var a account.Account
	a.RecordSession(record(1, r0), r0)
	if a.SeeSession(1, r0.Add(-time.Minute)) || a.SeeSession(2, r0.Add(time.Minute)) {
		t.Error("SeeSession moved back in time, or saw an unknown session")
	}
	if !a.SeeSession(1, r0.Add(time.Minute)) || !a.Sessions[0].LastSeen.Equal(r0.Add(time.Minute)) {
		t.Error("SeeSession did not move last seen forward")
	}
}

// pagedOnly is a Store whose full listing fails the test: pruning must
// read the accounts a page at a time.
type pagedOnly struct {
	account.Store
	t *testing.T
}

func (p pagedOnly) Accounts() ([]account.Account, error) {
	p.t.Error("PruneRegistries listed every account at once; it reads them a page at a time")
	return p.Store.Accounts()
}

func TestPruneRegistries_ReadsEveryPageAndOnlyPages(t *testing.T) {
	const users = 2500 // more than two pages
	s := pagedOnly{Store: memstore.New(), t: t}
	for i := range users {
		name := fmt.Sprintf("user%04d", i)
		if err := account.RecordSession(s, name, 0, record(1, r0), r0); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // half of them also have a session that lives on
			if err := account.RecordSession(s, name, 0, record(2, r0.Add(6*time.Hour)), r0.Add(6*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := account.PruneRegistries(s, r0.Add(13*time.Hour))
	if err != nil || n != users {
		t.Fatalf("PruneRegistries = %d, %v; want %d", n, err, users)
	}
	for _, name := range []string{"user0000", "user0999", "user1000", "user1001", "user2498", "user2499"} {
		a, err := s.Account(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := a.SessionAt(1, r0.Add(13*time.Hour)); ok || len(a.Sessions) > 1 {
			t.Errorf("%s after pruning: sessions %+v", name, a.Sessions)
		}
	}
}
