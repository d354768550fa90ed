package storetest

import (
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// testRegistry holds a store to the session registry of SPEC §16: the
// sessions and devices an update leaves are read back (by Account and by
// Accounts, which the pruning reads), ending one is a revocation every
// session check sees, and pruning drops what expired.
func testRegistry(t *testing.T, open func(t *testing.T) account.Store) {
	session := func(id uint64, at time.Time) account.SessionRecord {
		return account.SessionRecord{ID: id, Device: "Firefox on Linux", IP: "192.0.2.7", SignedIn: at, LastSeen: at,
			Expires: at.Add(12 * time.Hour), Level: 2, Factor: "totp"}
	}
	device := account.RememberedDevice{ID: 77, Device: "Safari on iPhone", Created: T0, LastUsed: T0, Expires: T0.Add(30 * 24 * time.Hour)}
	start := func(t *testing.T) account.Store {
		s := open(t)
		for id, at := range map[uint64]time.Time{1: T0, 2: T0.Add(time.Hour)} {
			if err := account.RecordSession(s, "alice", 0, session(id, at), at); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := account.RememberDevice(s, "alice", 0, device, T0); err != nil || !ok {
			t.Fatalf("RememberDevice = %v, %v", ok, err)
		}
		return s
	}
	t.Run("sessions and devices are saved and read back", func(t *testing.T) {
		s := start(t)
		a := MustAccount(t, s, "alice")
		got, ok := a.SessionAt(2, T0.Add(time.Hour))
		if len(a.Sessions) != 2 || !ok || got.Device != "Firefox on Linux" || got.IP != "192.0.2.7" || got.Factor != "totp" ||
			got.Level != 2 || !got.SignedIn.Equal(T0.Add(time.Hour)) || !got.Expires.Equal(T0.Add(13*time.Hour)) {
			t.Errorf("sessions = %+v", a.Sessions)
		}
		if d, ok := a.DeviceAt(77, T0); !ok || d.Device != device.Device || !d.Expires.Equal(device.Expires) {
			t.Errorf("devices = %+v", a.Devices)
		}
		listed, err := s.Accounts()
		if err != nil || len(listed) != 1 || len(listed[0].Sessions) != 2 || len(listed[0].Devices) != 1 {
			t.Errorf("Accounts = %+v, %v; want alice with her 2 sessions and 1 device", listed, err)
		}
	})
	t.Run("last seen is saved", func(t *testing.T) {
		s := start(t)
		if err := account.SeeSession(s, "alice", 1, T0.Add(5*time.Minute)); err != nil {
			t.Fatal(err)
		}
		a := MustAccount(t, s, "alice")
		got, _ := a.SessionAt(1, T0)
		if !got.LastSeen.Equal(T0.Add(5 * time.Minute)) {
			t.Errorf("last seen = %v, want %v", got.LastSeen, T0.Add(5*time.Minute))
		}
	})
	t.Run("an ended session is revoked in SessionState and leaves the list", func(t *testing.T) {
		s := start(t)
		if err := account.EndSession(s, "alice", 1, T0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if st := MustSessionState(t, s, "alice"); !st.Revoked(1) || st.Revoked(2) {
			t.Errorf("SessionState revokes 1: %v, 2: %v; want true, false", st.Revoked(1), st.Revoked(2))
		}
		if a := MustAccount(t, s, "alice"); len(a.Sessions) != 1 || len(a.Devices) != 1 {
			t.Errorf("after ending one: sessions %+v, devices %+v", a.Sessions, a.Devices)
		}
		if err := account.EndSession(s, "alice", 1, T0.Add(time.Minute)); err != account.ErrNotFound {
			t.Errorf("ending it again = %v, want ErrNotFound", err)
		}
	})
	t.Run("raising the generation forgets sessions and devices", func(t *testing.T) {
		s := start(t)
		if _, err := account.BumpGeneration(s, "alice"); err != nil {
			t.Fatal(err)
		}
		if a := MustAccount(t, s, "alice"); len(a.Sessions)+len(a.Devices) != 0 {
			t.Errorf("after BumpGeneration: sessions %+v, devices %+v", a.Sessions, a.Devices)
		}
	})
	t.Run("pruning drops what expired", func(t *testing.T) {
		s := start(t)
		n, err := account.PruneRegistries(s, T0.Add(12*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("PruneRegistries = %d, %v; want 1", n, err)
		}
		if a := MustAccount(t, s, "alice"); len(a.Sessions) != 1 || a.Sessions[0].ID != 2 || len(a.Devices) != 1 {
			t.Errorf("after pruning: sessions %+v, devices %+v", a.Sessions, a.Devices)
		}
	})
}
