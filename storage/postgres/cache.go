package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/totp-auth/totp_auth/gateway/account"
)

// Defaults of Options.Lease and Options.Heartbeat. The lease bounds how
// long a stalled listener can keep memory trusted after a change it did
// not hear: under a second, so that a logout on one instance is in force
// on every other within one second in every case (SPEC §13). Four
// heartbeats fit in it, so one late heartbeat costs no trust.
const (
	DefaultLease     = 800 * time.Millisecond
	DefaultHeartbeat = 200 * time.Millisecond
)

// ListenerApplicationName is the application_name of the connection that
// listens for changes, so an operator can find it in pg_stat_activity.
const ListenerApplicationName = "totp_auth listener"

// cache keeps each user's SessionState in memory, so that a request with a
// session costs no round trip, and trusts it only while it can prove it
// hears every change:
//
//   - A trigger on the accounts table notifies `<schema>.account_changes`
//     on every change a session check reads, whoever makes it, with a
//     digest of the user's name under a key kept in the meta table (any
//     role that may connect can LISTEN; it learns no names). The listener
//     deletes that user's entry: each miss records its user's digest.
//   - Each instance notifies `<schema>.heartbeat` with its own id, the
//     time it sent the heartbeat and an HMAC of both under a key only this
//     process knows, every Heartbeat; only its own authentic heartbeats
//     count, so another role that may connect cannot extend the trust
//     with a heartbeat from the future. PostgreSQL delivers notifications
//     in commit order, so once the listener hears a heartbeat sent at s,
//     it has heard every change committed before s (a heartbeat replayed
//     by someone else was committed later still). Memory is trusted while
//     the newest heartbeat heard was sent less than Lease ago and the
//     listening connection has not dropped since.
//   - Untrusted, SessionState asks the database on every call, and returns
//     its error when the database does not answer: the gateway then refuses
//     the request rather than answer from stale memory.
//   - A miss stores what it read only if no change of that user (and no
//     reconnection) was heard while it was reading: it leaves a marker
//     first, which a notification deletes, and replaces only its own marker.
//
// Counters are never cached, and their transactions notify nobody.
type cache struct {
	db      *DB
	connCfg *pgx.ConnConfig
	lease   time.Duration
	beat    time.Duration
	id      string // this instance, in its heartbeats
	// beatKey authenticates this instance's heartbeats; it never leaves
	// the process.
	beatKey []byte
	// notifyKey is the key of the digests in account notifications.
	notifyKey []byte

	accountsChannel, heartbeatChannel string

	entries sync.Map // user → *entry
	names   sync.Map // digest (as notified) → user, for every user looked up
	// listening is set while the listener holds a connection that has
	// LISTENed and whose earlier entries were dropped.
	listening atomic.Bool
	// lastBeat is when the newest heartbeat heard was sent, as time since
	// epoch (monotonic); 0 for none since the listener connected.
	lastBeat atomic.Int64
	epoch    time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// entry is a cached state, or (filled false) the marker of a miss being read.
type entry struct {
	state  account.SessionState
	filled bool
}

func newCache(db *DB, connCfg *pgx.ConnConfig, lease, beat time.Duration, notifyKey []byte) *cache {
	if lease <= 0 {
		lease = DefaultLease
	}
	if beat <= 0 {
		beat = DefaultHeartbeat
	}
	var id [8]byte
	beatKey := make([]byte, 32)
	_, _ = rand.Read(id[:]) // never fails (crypto/rand panics instead)
	_, _ = rand.Read(beatKey)
	cfg := connCfg.Copy()
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	c := &cache{
		db: db, connCfg: cfg, lease: lease, beat: beat, id: hex.EncodeToString(id[:]),
		beatKey: beatKey, notifyKey: notifyKey,
		accountsChannel:  db.schema + ".account_changes",
		heartbeatChannel: db.schema + ".heartbeat",
		epoch:            time.Now(),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

func (c *cache) start() {
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.listen() }()
	go func() { defer c.wg.Done(); c.sendHeartbeats() }()
}

func (c *cache) stop() {
	c.cancel()
	c.wg.Wait()
}

func (c *cache) now() int64 { return int64(time.Since(c.epoch)) }

// trusted reports whether memory reflects every change committed more than
// a lease ago (and, with a live listener, almost every one since).
func (c *cache) trusted() bool {
	beat := c.lastBeat.Load()
	return c.listening.Load() && beat != 0 && c.now()-beat < int64(c.lease)
}

// SessionState implements account.Store. It is on the path of every request
// with a session: a map lookup while memory is trusted, and never a
// decryption.
func (db *DB) SessionState(user string) (account.SessionState, error) {
	c := db.cache
	if !c.trusted() {
		return db.readSessionState(user)
	}
	if e, ok := c.entries.Load(user); ok && e.(*entry).filled {
		return e.(*entry).state, nil
	}
	// The digest is known before the marker is stored, so a change heard
	// during the read finds it.
	c.names.Store(c.digest(user), user)
	marker := &entry{}
	c.entries.Store(user, marker)
	st, err := db.readSessionState(user)
	if err != nil {
		c.entries.CompareAndDelete(user, marker)
		return account.SessionState{}, err
	}
	if db.testHookFill != nil {
		db.testHookFill(user)
	}
	if c.trusted() {
		c.entries.CompareAndSwap(user, marker, &entry{state: st, filled: true})
	} else {
		c.entries.CompareAndDelete(user, marker)
	}
	return st, nil
}

// forget drops what memory holds of user, and a miss being read, which may
// have read the state before a change.
func (c *cache) forget(user string) { c.entries.Delete(user) }

func (db *DB) readSessionState(user string) (account.SessionState, error) {
	ctx, cancel := db.op()
	defer cancel()
	r, err := loadAccount(ctx, db.pool, user, false)
	if err != nil {
		return account.SessionState{}, fmt.Errorf("read session state of %q: %w", user, err)
	}
	return account.SessionStateOf(withheld(user, r)), nil
}

// listen keeps a connection LISTENing, reconnecting when it drops.
func (c *cache) listen() {
	backoff := 50 * time.Millisecond
	for c.ctx.Err() == nil {
		heard := c.listenOnce()
		c.listening.Store(false)
		c.lastBeat.Store(0)
		if heard {
			backoff = 50 * time.Millisecond
		}
		select {
		case <-c.ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// listenOnce listens on one connection until it fails, and reports whether
// it heard anything.
func (c *cache) listenOnce() (heard bool) {
	ctx, cancel := context.WithTimeout(c.ctx, opTimeout)
	conn, err := pgx.ConnectConfig(ctx, c.connCfg)
	cancel()
	if err != nil {
		return false
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	}()
	ctx, cancel = context.WithTimeout(c.ctx, opTimeout)
	_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{c.accountsChannel}.Sanitize()+"; LISTEN "+pgx.Identifier{c.heartbeatChannel}.Sanitize())
	cancel()
	if err != nil {
		return false
	}
	// Changes made while no connection listened were not heard.
	c.entries.Clear()
	c.listening.Store(true)
	for {
		// A listener that hears not even its own heartbeats reconnects.
		ctx, cancel := context.WithTimeout(c.ctx, 2*c.lease)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		if err != nil {
			return heard
		}
		heard = true
		c.handle(n)
	}
}

func (c *cache) handle(n *pgconn.Notification) {
	switch n.Channel {
	case c.accountsChannel:
		if n.Payload == "" {
			c.entries.Clear() // the table was truncated
			return
		}
		if user, ok := c.names.Load(n.Payload); ok {
			c.forget(user.(string))
		}
	case c.heartbeatChannel:
		msg, mac, ok := strings.Cut(n.Payload, "/")
		id, sent, ok2 := strings.Cut(msg, ":")
		if !ok || !ok2 || id != c.id {
			return // another instance's, or not a heartbeat
		}
		if !hmac.Equal([]byte(mac), []byte(c.beatMAC(msg))) {
			return // forged: not sent by this process
		}
		t, err := strconv.ParseInt(sent, 10, 64)
		if err == nil && t > c.lastBeat.Load() {
			c.lastBeat.Store(t)
		}
	}
}

// digest is how account notifications name user: the hex SHA-256 of the
// notify key and the name, as the trigger computes it.
func (c *cache) digest(user string) string {
	h := sha256.New()
	h.Write(c.notifyKey)
	h.Write([]byte(user))
	return hex.EncodeToString(h.Sum(nil))
}

// beatMAC authenticates a heartbeat's id and time.
func (c *cache) beatMAC(msg string) string {
	m := hmac.New(sha256.New, c.beatKey)
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// sendHeartbeats notifies the heartbeat channel on schedule, whatever the
// traffic, until the cache stops.
func (c *cache) sendHeartbeats() {
	t := time.NewTicker(c.beat)
	defer t.Stop()
	for {
		c.sendHeartbeat()
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *cache) sendHeartbeat() {
	// Taken before the round trip: a heartbeat proves what was committed
	// before it was sent.
	msg := c.id + ":" + strconv.FormatInt(c.now(), 10)
	payload := msg + "/" + c.beatMAC(msg)
	ctx, cancel := context.WithTimeout(c.ctx, c.lease)
	defer cancel()
	// A failure needs no handling: the lease runs out, and requests ask
	// the database meanwhile.
	_, _ = c.db.pool.Exec(ctx, "SELECT pg_notify($1, $2)", c.heartbeatChannel, payload)
}
