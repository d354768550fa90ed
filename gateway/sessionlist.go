package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// Where a user is signed in (SPEC §16): the session list and remembered
// devices of the account page, the JSON answers of GET sessions, and
// signing out one session or every other one. Ending a session revokes
// it (Account.EndSession), which every block and instance checks on every
// request; remembered devices stay.

// RegistryID is how the API, the page and the CLI write a session or
// device id: 16 hex digits. It is the id inside the encrypted cookie,
// never the cookie's value, which it cannot forge or decrypt.
func RegistryID(id uint64) string { return fmt.Sprintf("%016x", id) }

// ParseRegistryID reads an id as RegistryID writes it.
func ParseRegistryID(s string) (uint64, bool) {
	if len(s) != 16 {
		return 0, false
	}
	id, err := strconv.ParseUint(s, 16, 64)
	return id, err == nil
}

// sessionJSON and deviceJSON are the rows of GET sessions.
type sessionJSON struct {
	ID       string  `json:"id"`
	Device   string  `json:"device"`
	IP       string  `json:"ip"`
	SignedIn *string `json:"signed_in"`
	LastSeen *string `json:"last_seen"`
	Level    uint8   `json:"level"`
	Factor   string  `json:"factor"`
	Current  bool    `json:"current"`
}

type deviceJSON struct {
	ID       string  `json:"id"`
	Device   string  `json:"device"`
	Created  *string `json:"created"`
	LastUsed *string `json:"last_used"`
	Expires  *string `json:"expires"`
}

// sessionRow and deviceRow are the same for the account page, in words.
type sessionRow struct {
	ID, Device, IP, SignedIn, LastSeen, How string
	Current                                 bool
}

type deviceRow struct {
	ID, Device, Created, LastUsed, Expires string
}

// factorWords says a factor name as the account page does.
var factorWords = map[string]string{
	"password":          "password only",
	"totp":              "password and authenticator code",
	"backup_code":       "password and backup code",
	"passkey":           "passkey",
	"remembered_device": "password on a remembered device",
}

func pageTime(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") }

// registry returns the user's sessions and remembered devices in force
// at now, as the account page and GET sessions list them.
func (g *Gateway) registry(user string, now time.Time) ([]account.SessionRecord, []account.RememberedDevice, error) {
	acct, err := g.cfg.Store.Account(user)
	if err != nil {
		return nil, nil, err
	}
	sessions, devices := g.inForce(acct, now)
	return sessions, devices, nil
}

// inForce is what of acct's registry is in force here at now: not
// expired, and proven against the password hash the user has here (a
// changed `user` line ended the others, SPEC §4 rule 18).
func (g *Gateway) inForce(acct account.Account, now time.Time) ([]account.SessionRecord, []account.RememberedDevice) {
	cred := g.credential(acct.Name)
	var sessions []account.SessionRecord
	for _, s := range acct.SessionsInForce(now) {
		if s.Credential == cred {
			sessions = append(sessions, s)
		}
	}
	var devices []account.RememberedDevice
	for _, d := range acct.DevicesInForce(now) {
		if d.Credential == cred {
			devices = append(devices, d)
		}
	}
	return sessions, devices
}

// sessionRows and deviceRows are the account page's lists; current is
// the session viewing them.
func sessionRows(sessions []account.SessionRecord, current uint64) []sessionRow {
	rows := make([]sessionRow, 0, len(sessions))
	for _, s := range sessions {
		how, ok := factorWords[s.Factor]
		if !ok {
			how = s.Factor
		}
		row := sessionRow{ID: RegistryID(s.ID), Device: s.Device, IP: s.IP, SignedIn: pageTime(s.SignedIn),
			LastSeen: pageTime(s.LastSeen), How: how, Current: s.ID == current}
		if row.Current {
			rows = append([]sessionRow{row}, rows...)
		} else {
			rows = append(rows, row)
		}
	}
	return rows
}

func deviceRows(devices []account.RememberedDevice) []deviceRow {
	rows := make([]deviceRow, 0, len(devices))
	for _, d := range devices {
		rows = append(rows, deviceRow{ID: RegistryID(d.ID), Device: d.Device, Created: pageTime(d.Created),
			LastUsed: pageTime(d.LastUsed), Expires: pageTime(d.Expires)})
	}
	return rows
}

func (g *Gateway) getSessions(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	sessions, devices, err := g.registry(s.User, g.cfg.Clock.Now())
	if err != nil {
		g.internalError(w, r, "read sessions", err)
		return
	}
	out := struct {
		Sessions []sessionJSON `json:"sessions"`
		Devices  []deviceJSON  `json:"devices"`
	}{Sessions: []sessionJSON{}, Devices: []deviceJSON{}}
	for _, x := range sessions {
		out.Sessions = append(out.Sessions, sessionJSON{ID: RegistryID(x.ID), Device: x.Device, IP: x.IP,
			SignedIn: rfc3339(x.SignedIn), LastSeen: rfc3339(x.LastSeen), Level: x.Level, Factor: x.Factor, Current: x.ID == s.ID})
	}
	for _, d := range devices {
		out.Devices = append(out.Devices, deviceJSON{ID: RegistryID(d.ID), Device: d.Device,
			Created: rfc3339(d.Created), LastUsed: rfc3339(d.LastUsed), Expires: rfc3339(d.Expires)})
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) postEndSession(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	now := g.cfg.Clock.Now()
	id, ok := ParseRegistryID(f.get("id"))
	err := account.ErrNotFound
	if ok {
		// Only the signed-in user's own registry is searched: another
		// user's id is as unknown as one never issued.
		err = account.EndSession(g.cfg.Store, s.User, id, now)
	}
	switch {
	case errors.Is(err, account.ErrNotFound):
		g.problem(w, r, problem{status: http.StatusNotFound, code: "not_found", msg: "That session has ended already."}, page{Title: "Not found", Continue: g.cfg.Prefix + "/account"})
		return
	case err != nil:
		g.internalError(w, r, "end session", err)
		return
	}
	g.audit(r, EventSessionEnded, OutcomeOK, s.User)
	if id == s.ID {
		g.clearCookie(w, r, g.cfg.CookieName)
		g.seeOther(w, r, g.donePage(doneSignedOut), map[string]string{"status": "ok"})
		return
	}
	g.seeOther(w, r, g.accountURL(g.backTarget(r, f.get("redirect"))), map[string]string{"status": "ok"})
}

func (g *Gateway) postEndOtherSessions(w http.ResponseWriter, r *http.Request) {
	s, _, ok := g.requireSession(w, r)
	if !ok {
		return
	}
	f, ok := g.readPost(w, r)
	if !ok {
		return
	}
	now := g.cfg.Clock.Now()
	ended, err := account.EndOtherSessions(g.cfg.Store, s.User, s.ID, now)
	if err != nil {
		g.internalError(w, r, "end other sessions", err)
		return
	}
	g.audit(r, EventSessionEnded, OutcomeOK, s.User)
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "ended": ended})
		return
	}
	http.Redirect(w, r, g.accountURL(g.backTarget(r, f.get("redirect"))), http.StatusSeeOther)
}
