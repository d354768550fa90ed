package account

import (
	"fmt"
	"sort"
	"time"
)

// The registry of a user's sessions and remembered devices (SPEC §16):
// what the account page and `caddy totp-auth user sessions` list. Like
// every rule for changing an Account, these are plain functions over the
// account that Store.UpdateAccount hands them.
//
// A session is refused through the revocations and the generation, never
// through this list: the list is what people see and pick from, and ending
// a session here revokes it (RevokeSession), which every block and
// instance checks on every request.

// MaxSessions bounds the sessions the registry keeps per user. Starting
// one more ends the one seen least recently, so that every session in
// force is one "Sign out everywhere else" can end.
const MaxSessions = 32

// MaxDevices bounds the remembered devices per user. Remembering one
// more forgets the one used least recently.
const MaxDevices = 16

// SessionRecord is one session in force, as the account page lists it.
type SessionRecord struct {
	// ID is the session's id, as the session cookie carries it inside its
	// encryption; it is not the cookie's value.
	ID uint64 `json:"id"`
	// Device names the browser and system in words ("Firefox on Linux").
	Device string `json:"device,omitempty"`
	// IP is the client address the session started from.
	IP       string    `json:"ip,omitempty"`
	SignedIn time.Time `json:"signed_in"`
	// LastSeen is coarse: written at most once per LastSeenEvery.
	LastSeen time.Time `json:"last_seen"`
	// Expires is the session's absolute end.
	Expires time.Time `json:"expires"`
	Level   uint8     `json:"level"`
	// Factor names what proved the session ("totp", "remembered_device", …).
	Factor string `json:"factor"`
	// Credential is the session's fingerprint of the `user` line's
	// password hash (0 for users in the database): a changed line ends
	// the session, and the gateway lists only those of the current one.
	Credential uint64 `json:"credential,omitempty"`
}

// RememberedDevice is a browser on which the second factor is skipped
// until Expires (SPEC §16 "Remember this device").
type RememberedDevice struct {
	// ID is carried, encrypted, in the device cookie; forgetting the
	// record makes that cookie worthless.
	ID       uint64    `json:"id"`
	Device   string    `json:"device,omitempty"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	Expires  time.Time `json:"expires"`
	// Credential is as in SessionRecord: the device's cookie carries it
	// too, and a changed `user` line makes both worthless.
	Credential uint64 `json:"credential,omitempty"`
}

// RecordSession adds rec to the registry, after dropping the records
// expired at now. When MaxSessions are in force, the one seen least
// recently is ended (revoked) to make room.
func (a *Account) RecordSession(rec SessionRecord, now time.Time) {
	a.PruneRegistry(now)
	kept := a.Sessions[:0:0]
	for _, s := range a.Sessions {
		if s.ID != rec.ID {
			kept = append(kept, s)
		}
	}
	a.Sessions = kept
	for len(a.Sessions) >= MaxSessions {
		oldest := 0
		for i, s := range a.Sessions {
			if s.LastSeen.Before(a.Sessions[oldest].LastSeen) {
				oldest = i
			}
		}
		a.RevokeSession(a.Sessions[oldest].ID, a.Sessions[oldest].Expires, now)
	}
	a.Sessions = append(a.Sessions, rec)
}

// SessionAt returns the registry's record of session id if it has not
// expired at now.
func (a *Account) SessionAt(id uint64, now time.Time) (SessionRecord, bool) {
	for _, s := range a.Sessions {
		if s.ID == id && now.Before(s.Expires) {
			return s, true
		}
	}
	return SessionRecord{}, false
}

// EndSession ends the session with this id, if the registry lists it as
// in force at now (ErrNotFound otherwise): it is revoked until its expiry
// and leaves the list. Remembered devices stay.
func (a *Account) EndSession(id uint64, now time.Time) error {
	s, ok := a.SessionAt(id, now)
	if !ok {
		return ErrNotFound
	}
	a.RevokeSession(id, s.Expires, now)
	return nil
}

// EndOtherSessions ends every session in force at now but keep, and
// returns how many it ended. Remembered devices stay.
func (a *Account) EndOtherSessions(keep uint64, now time.Time) int {
	var ids []uint64
	for _, s := range a.Sessions {
		if s.ID != keep && now.Before(s.Expires) {
			ids = append(ids, s.ID)
		}
	}
	for _, id := range ids {
		// RevokeSession may end every session at once (too many
		// revocations); then the rest are gone already.
		_ = a.EndSession(id, now)
	}
	return len(ids)
}

// SeeSession moves the recorded last-seen time of session id to at, and
// reports whether that changed anything: an ended session, or one seen
// later already, is left alone.
func (a *Account) SeeSession(id uint64, at time.Time) bool {
	for i := range a.Sessions {
		if a.Sessions[i].ID == id {
			if !at.After(a.Sessions[i].LastSeen) {
				return false
			}
			a.Sessions[i].LastSeen = at
			return true
		}
	}
	return false
}

// removeSessionRecord drops the record of session id, if there is one.
func (a *Account) removeSessionRecord(id uint64) {
	for i, s := range a.Sessions {
		if s.ID == id {
			a.Sessions = append(a.Sessions[:i:i], a.Sessions[i+1:]...)
			return
		}
	}
}

// RememberDevice adds d to the remembered devices, after dropping those
// expired at now; past MaxDevices the one used least recently is forgotten.
func (a *Account) RememberDevice(d RememberedDevice, now time.Time) {
	a.PruneRegistry(now)
	for len(a.Devices) >= MaxDevices {
		oldest := 0
		for i, x := range a.Devices {
			if x.LastUsed.Before(a.Devices[oldest].LastUsed) {
				oldest = i
			}
		}
		a.Devices = append(a.Devices[:oldest:oldest], a.Devices[oldest+1:]...)
	}
	a.Devices = append(a.Devices, d)
}

// DeviceAt returns the remembered device with this id if it has not
// expired at now.
func (a *Account) DeviceAt(id uint64, now time.Time) (RememberedDevice, bool) {
	for _, d := range a.Devices {
		if d.ID == id && now.Before(d.Expires) {
			return d, true
		}
	}
	return RememberedDevice{}, false
}

// UseDevice records that the remembered device id skipped the second
// factor at now; ErrNotFound if it is not remembered at now.
func (a *Account) UseDevice(id uint64, now time.Time) error {
	for i := range a.Devices {
		if a.Devices[i].ID == id && now.Before(a.Devices[i].Expires) {
			a.Devices[i].LastUsed = now
			return nil
		}
	}
	return ErrNotFound
}

// ForgetDevice forgets the remembered device id (ErrNotFound if there is
// no such device): its cookie skips nothing from then on.
func (a *Account) ForgetDevice(id uint64) error {
	for i, d := range a.Devices {
		if d.ID == id {
			a.Devices = append(a.Devices[:i:i], a.Devices[i+1:]...)
			return nil
		}
	}
	return ErrNotFound
}

// PruneRegistry drops the sessions and devices expired at now and reports
// whether it dropped any.
func (a *Account) PruneRegistry(now time.Time) bool {
	n := len(a.Sessions) + len(a.Devices)
	sessions := a.Sessions[:0:0]
	for _, s := range a.Sessions {
		if now.Before(s.Expires) {
			sessions = append(sessions, s)
		}
	}
	devices := a.Devices[:0:0]
	for _, d := range a.Devices {
		if now.Before(d.Expires) {
			devices = append(devices, d)
		}
	}
	a.Sessions, a.Devices = nilIfEmpty(sessions), nilIfEmpty(devices)
	return len(a.Sessions)+len(a.Devices) != n
}

// SessionsInForce returns the sessions in force at now, most recently
// seen first.
func (a *Account) SessionsInForce(now time.Time) []SessionRecord {
	var out []SessionRecord
	for _, s := range a.Sessions {
		if now.Before(s.Expires) {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastSeen.After(out[j].LastSeen) })
	return out
}

// DevicesInForce returns the devices remembered at now, most recently
// used first.
func (a *Account) DevicesInForce(now time.Time) []RememberedDevice {
	var out []RememberedDevice
	for _, d := range a.Devices {
		if now.Before(d.Expires) {
			out = append(out, d)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// pruneBatch is how many accounts PruneRegistries reads at a time.
const pruneBatch = 1000

// PruneRegistries drops, from every stored account, the sessions and
// remembered devices expired at now, and returns how many accounts it
// changed. It runs with the counters' pruning, and reads the accounts a
// page at a time (AccountsAfter), so that 100,000 users do not sit in a
// running Caddy's memory at once.
func PruneRegistries(s Store, now time.Time) (int, error) {
	n := 0
	for after := ""; ; {
		accounts, err := s.AccountsAfter(after, pruneBatch)
		if err != nil {
			return n, fmt.Errorf("prune sessions: %w", err)
		}
		for _, listed := range accounts {
			if len(listed.Sessions)+len(listed.Devices) == 0 {
				continue
			}
			changed := false
			err := update(s, listed.Name, func(a *Account) error {
				changed = a.PruneRegistry(now)
				if !changed {
					return errUnchanged
				}
				return nil
			})
			if err != nil {
				return n, fmt.Errorf("prune sessions of %q: %w", listed.Name, err)
			}
			if changed {
				n++
			}
		}
		if len(accounts) < pruneBatch {
			return n, nil
		}
		after = accounts[len(accounts)-1].Name
	}
}

// The rules above, applied through a Store: one UpdateAccount each.

// RecordSession applies Account.RecordSession to the user's account, if
// the session's generation is still the user's (a session ended while it
// started is refused anyway, and the list shows no ghost).
func RecordSession(s Store, user string, generation uint64, rec SessionRecord, now time.Time) error {
	return update(s, user, func(a *Account) error {
		if a.Generation != generation {
			return errUnchanged
		}
		a.RecordSession(rec, now)
		return nil
	})
}

// SeeSession applies Account.SeeSession to the user's account; it saves
// nothing when that changes nothing.
func SeeSession(s Store, user string, id uint64, at time.Time) error {
	return update(s, user, func(a *Account) error {
		if !a.SeeSession(id, at) {
			return errUnchanged
		}
		return nil
	})
}

// EndSession applies Account.EndSession to the user's account.
func EndSession(s Store, user string, id uint64, now time.Time) error {
	return update(s, user, func(a *Account) error { return a.EndSession(id, now) })
}

// EndOtherSessions applies Account.EndOtherSessions to the user's account
// and returns how many sessions it ended.
func EndOtherSessions(s Store, user string, keep uint64, now time.Time) (int, error) {
	var ended int
	err := update(s, user, func(a *Account) error {
		ended = a.EndOtherSessions(keep, now)
		if ended == 0 {
			return errUnchanged
		}
		return nil
	})
	return ended, err
}

// RememberDevice applies Account.RememberDevice to the user's account if
// generation is still the user's, and reports whether it did.
func RememberDevice(s Store, user string, generation uint64, d RememberedDevice, now time.Time) (bool, error) {
	remembered := false
	err := update(s, user, func(a *Account) error {
		remembered = a.Generation == generation
		if !remembered {
			return errUnchanged
		}
		a.RememberDevice(d, now)
		return nil
	})
	return remembered && err == nil, err
}

// UseDevice applies Account.UseDevice to the user's account;
// ErrNotFound also when the generation is no longer the user's.
func UseDevice(s Store, user string, generation, id uint64, now time.Time) error {
	return update(s, user, func(a *Account) error {
		if a.Generation != generation {
			return ErrNotFound
		}
		return a.UseDevice(id, now)
	})
}

// ForgetDevice applies Account.ForgetDevice to the user's account.
func ForgetDevice(s Store, user string, id uint64) error {
	return update(s, user, func(a *Account) error { return a.ForgetDevice(id) })
}
