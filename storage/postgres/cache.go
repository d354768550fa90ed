package postgres

import (
	"context"
	"crypto/rand"
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

// Defaults of Options.Lease and Options.Heartbeat.
const (
	DefaultLease     = 2 * time.Second
	DefaultHeartbeat = 250 * time.Millisecond
)

// ListenerApplicationName is the application_name of the connection that
// listens for changes, so an operator can find it in pg_stat_activity.
const ListenerApplicationName = "totp_auth listener"

// cache keeps each user's SessionState in memory, so that a request with a
// session costs no round trip, and trusts it only while it can prove it
// hears every change:
//
//   - A trigger on the accounts table notifies `<schema>.accounts` with the
//     user's name on every change a session check reads, whoever makes it.
//     The listener deletes that user's entry.
//   - Each instance notifies `<schema>.heartbeat` with its own id and the
//     time it sent the heartbeat, every Heartbeat. PostgreSQL delivers
//     notifications in commit order, so once the listener hears a heartbeat
//     sent at s, it has heard every change committed before s. Memory is
//     trusted while the newest heartbeat heard was sent less than Lease ago
//     and the listening connection has not dropped since.
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

	accountsChannel, heartbeatChannel string

	entries sync.Map // user → *entry
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

// testHookFill, when set by a test, runs between a miss's read and its
// store into memory: the test changes the user there.
var testHookFill func(user string)

// entry is a cached state, or (filled false) the marker of a miss being read.
type entry struct {
	state  account.SessionState
	filled bool
}

func newCache(db *DB, connCfg *pgx.ConnConfig, lease, beat time.Duration) *cache {
	if lease <= 0 {
		lease = DefaultLease
	}
	if beat <= 0 {
		beat = DefaultHeartbeat
	}
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand panics instead)
	cfg := connCfg.Copy()
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	c := &cache{
		db: db, connCfg: cfg, lease: lease, beat: beat, id: hex.EncodeToString(id[:]),
		accountsChannel:  db.schema + ".accounts",
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
	marker := &entry{}
	c.entries.Store(user, marker)
	st, err := db.readSessionState(user)
	if err != nil {
		c.entries.CompareAndDelete(user, marker)
		return account.SessionState{}, err
	}
	if testHookFill != nil {
		testHookFill(user)
	}
	if c.trusted() {
		c.entries.CompareAndSwap(user, marker, &entry{state: st, filled: true})
	} else {
		c.entries.CompareAndDelete(user, marker)
	}
	return st, nil
}

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
		c.entries.Delete(n.Payload)
	case c.heartbeatChannel:
		id, sent, ok := strings.Cut(n.Payload, ":")
		if !ok || id != c.id {
			return // another instance's
		}
		t, err := strconv.ParseInt(sent, 10, 64)
		if err == nil && t > c.lastBeat.Load() {
			c.lastBeat.Store(t)
		}
	}
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
	payload := c.id + ":" + strconv.FormatInt(c.now(), 10)
	ctx, cancel := context.WithTimeout(c.ctx, c.lease)
	defer cancel()
	// A failure needs no handling: the lease runs out, and requests ask
	// the database meanwhile.
	_, _ = c.db.pool.Exec(ctx, "SELECT pg_notify($1, $2)", c.heartbeatChannel, payload)
}
