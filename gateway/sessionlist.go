package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"go.uber.org/zap"
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
		g.problem(w, r, problem{status: http.StatusNotFound, code: codeNotFound, msg: "That session has ended already."}, page{Title: "Not found", Continue: g.pageURL(pathAccount)})
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

// LastSeenEvery is how stale the registry's last-seen time of a session
// may get: each instance writes it at most this often per session, off
// the request path (see lastSeenWriter).
const LastSeenEvery = 5 * time.Minute

// recordSession puts the session s, just started from r, in its user's
// registry (account.RecordSession). Sign-in writes anyway, so this costs the
// signed-in requests nothing.
func (g *Gateway) recordSession(r *http.Request, s Session, now time.Time) error {
	rec := account.SessionRecord{ID: s.ID, Device: deviceName(r.UserAgent()), IP: g.cfg.ClientIP(r),
		SignedIn: s.Issued, LastSeen: now, Expires: s.Expires, Level: uint8(s.Level), Factor: factorName(s.Factor), Credential: s.Credential}
	if err := account.RecordSession(g.cfg.Store, s.User, s.Generation, rec, now); err != nil {
		return fmt.Errorf("record session of %q: %w", s.User, err)
	}
	g.lastSeen.written(s.ID, now)
	return nil
}

// lastSeenWriter writes the last-seen time of sessions to the registry in
// the background, at most once per LastSeenEvery per session and process:
// a signed-in request only looks at a map, and queues a write when one is
// due. The queue is bounded; a write that does not fit is dropped, and the
// next one is due LastSeenEvery later.
type lastSeenWriter struct {
	mu sync.RWMutex
	// at holds, per session id, the unix second its last write was queued.
	at      map[uint64]int64
	queue   chan seenAt
	running atomic.Bool
	// wg counts running writers, so that tests can wait for them (see
	// export_test.go).
	wg sync.WaitGroup
}

type seenAt struct {
	user string
	id   uint64
	at   time.Time
}

// lastSeenQueue bounds the writes waiting; maxLastSeen the sessions
// remembered (when full, the map starts over: at worst one extra write
// per session).
const (
	lastSeenQueue = 1024
	maxLastSeen   = 100_000
)

// written records that session id's last-seen time is current at now.
func (l *lastSeenWriter) written(id uint64, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at == nil || len(l.at) >= maxLastSeen {
		l.at = make(map[uint64]int64)
	}
	l.at[id] = now.Unix()
}

// seen notes that a request proved session s at now, and queues a write
// of it when the last one is LastSeenEvery old.
func (g *Gateway) seen(s *Session, now time.Time) {
	l := &g.lastSeen
	sec := now.Unix()
	l.mu.RLock()
	last, ok := l.at[s.ID]
	l.mu.RUnlock()
	if ok && sec-last < int64(LastSeenEvery/time.Second) {
		return
	}
	l.mu.Lock()
	if last, ok := l.at[s.ID]; ok && sec-last < int64(LastSeenEvery/time.Second) {
		l.mu.Unlock()
		return
	}
	if l.queue == nil {
		l.queue = make(chan seenAt, lastSeenQueue)
	}
	// Due or not written, the session waits LastSeenEvery again: a full
	// queue drops this write rather than making every request of the
	// session take the lock.
	if l.at == nil || len(l.at) >= maxLastSeen {
		l.at = make(map[uint64]int64)
	}
	l.at[s.ID] = sec
	select {
	case l.queue <- seenAt{user: s.User, id: s.ID, at: now}:
	default:
	}
	queue := l.queue
	l.mu.Unlock()
	if l.running.CompareAndSwap(false, true) {
		l.wg.Add(1)
		go g.writeLastSeen(queue)
	}
}

// writeLastSeen drains the queue and ends; seen starts it again when
// there is more.
func (g *Gateway) writeLastSeen(queue chan seenAt) {
	l := &g.lastSeen
	defer l.wg.Done()
	for {
		select {
		case w := <-queue:
			if err := account.SeeSession(g.cfg.Store, w.user, w.id, w.at); err != nil {
				g.cfg.Logger.Warn("totp_auth: record when a session was last seen", zap.String("user", w.user), zap.Error(err))
			}
			continue
		default:
		}
		l.running.Store(false)
		// A write queued after the select and before the flag fell
		// would otherwise wait for the next request.
		if len(queue) == 0 || !l.running.CompareAndSwap(false, true) {
			return
		}
	}
}
