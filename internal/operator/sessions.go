package operator

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
)

// Where a user is signed in (SPEC §16), for `caddy totp-auth user
// sessions` and `user signout --session`: the same registry and ids as
// the account page and its GET sessions.

// OpSessions lists a user's sessions; OpEndSession ends one of them.
const (
	OpSessions   Operation = "users/sessions"
	OpEndSession Operation = "users/end-session"
)

// SessionListing is a user's sessions and remembered devices in force.
type SessionListing struct {
	DB       string       `json:"db"`
	User     string       `json:"user"`
	Sessions []SessionRow `json:"sessions"`
	Devices  []DeviceRow  `json:"devices"`
}

// SessionRow is one session, as GET sessions shows it (without "current":
// no session asks).
type SessionRow struct {
	ID       string `json:"id"`
	Device   string `json:"device"`
	IP       string `json:"ip"`
	SignedIn string `json:"signed_in"`
	LastSeen string `json:"last_seen"`
	Level    uint8  `json:"level"`
	Factor   string `json:"factor"`
}

// DeviceRow is one remembered device.
type DeviceRow struct {
	ID       string `json:"id"`
	Device   string `json:"device"`
	Created  string `json:"created"`
	LastUsed string `json:"last_used"`
	Expires  string `json:"expires"`
}

// PruneRegistries drops the sessions and remembered devices expired at
// now from every account (account.PruneRegistries); it runs with
// PruneCounters.
func PruneRegistries(s account.Store, now time.Time) (int, error) {
	return account.PruneRegistries(s, now)
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Sessions lists the user's sessions and remembered devices in force at now.
func (u *Users) Sessions(name string, now time.Time) (SessionListing, error) {
	name, err := UserName(name)
	if err != nil {
		return SessionListing{}, err
	}
	acct, err := u.Store.Account(name)
	if err != nil {
		return SessionListing{}, err
	}
	l := SessionListing{DB: u.DB, User: name, Sessions: []SessionRow{}, Devices: []DeviceRow{}}
	for _, s := range acct.SessionsInForce(now) {
		l.Sessions = append(l.Sessions, SessionRow{ID: gateway.RegistryID(s.ID), Device: s.Device, IP: s.IP,
			SignedIn: rfc3339(s.SignedIn), LastSeen: rfc3339(s.LastSeen), Level: s.Level, Factor: s.Factor})
	}
	for _, d := range acct.DevicesInForce(now) {
		l.Devices = append(l.Devices, DeviceRow{ID: gateway.RegistryID(d.ID), Device: d.Device,
			Created: rfc3339(d.Created), LastUsed: rfc3339(d.LastUsed), Expires: rfc3339(d.Expires)})
	}
	return l, nil
}

// EndSession ends the user's session with this id (as Sessions lists
// it) on every block and instance; the user's other sessions and
// remembered devices stay. An id the user has no session under is
// refused with 404.
func (u *Users) EndSession(name, id string, now time.Time) (Report, error) {
	name, err := UserName(name)
	if err != nil {
		return Report{}, err
	}
	sid, ok := gateway.ParseRegistryID(id)
	err = account.ErrNotFound
	if ok {
		err = account.EndSession(u.Store, name, sid, now)
	}
	if errors.Is(err, account.ErrNotFound) {
		return Report{}, refuse(http.StatusNotFound, "%s has no session %q in force: `caddy totp-auth user sessions %s` lists them", name, id, name)
	}
	if err != nil {
		return Report{}, err
	}
	return Report{DB: u.DB, Message: fmt.Sprintf("Ended session %s of %s; their other sessions go on.", id, name)}, nil
}
