package gateway

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// What a request with an app password keeps off its own path: the last
// use, written by a background writer, and the locks that refuse it, read
// from memory. Neither waits for the store.

// useInterval is how often the last use of one app password is written.
const useInterval = time.Minute

// useQueueSize bounds the uses waiting to be written; more are dropped
// (the next minute brings another).
const useQueueSize = 256

// appPasswordUse is one last use waiting to be written.
type appPasswordUse struct {
	user, id, ip string
	at           time.Time
}

// useRecorder writes last uses at most once per useInterval per app
// password. A writer goroutine runs while there is something to write and
// ends when the queue is empty, so a Gateway left behind by a reload
// leaves nothing running.
type useRecorder struct {
	mu      sync.Mutex
	last    map[string]time.Time
	queue   []appPasswordUse
	running bool
	logger  *zap.Logger
	// written, when set by a test, hears of every write done.
	written func()
}

// note queues a use of the app password id of user unless one was
// queued within useInterval.
func (u *useRecorder) note(s account.Store, user, id, ip string, now time.Time) {
	key := user + "\x00" + id
	u.mu.Lock()
	defer u.mu.Unlock()
	if at, ok := u.last[key]; ok && now.Sub(at) < useInterval && !now.Before(at) {
		return
	}
	if u.last == nil || len(u.last) >= cacheSize {
		u.last = make(map[string]time.Time, 64)
	}
	if len(u.queue) >= useQueueSize {
		return
	}
	u.last[key] = now
	u.queue = append(u.queue, appPasswordUse{user: user, id: id, ip: ip, at: now})
	if !u.running {
		u.running = true
		go u.write(s)
	}
}

func (u *useRecorder) write(s account.Store) {
	for {
		u.mu.Lock()
		if len(u.queue) == 0 {
			u.running = false
			u.mu.Unlock()
			return
		}
		use := u.queue[0]
		u.queue = u.queue[1:]
		done := u.written
		u.mu.Unlock()
		err := account.NoteAppPasswordUse(s, use.user, use.id, use.at, use.ip)
		if err != nil && u.logger != nil {
			u.logger.Warn("totp_auth: record app password use: " + err.Error())
		}
		if done != nil {
			done()
		}
	}
}

// lockView is what this gateway knows of the locks of failure counters:
// those its own attempts met or imposed, and every lock in the store as
// of at most a second ago, refreshed in the background. A request with an
// app password is refused by it without reading the store.
type lockView struct {
	mu         sync.Mutex
	until      map[string]time.Time
	refreshed  time.Time
	refreshing bool
	store      account.Store
	logger     *zap.Logger
}

// lockRefresh is how old the view of the store's locks may grow.
const lockRefresh = time.Second

// note records that key is locked until until.
func (v *lockView) note(key string, until time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.until == nil || len(v.until) >= cacheSize {
		v.until = make(map[string]time.Time)
	}
	if until.After(v.until[key]) {
		v.until[key] = until
	}
}

// refusal returns how long the longest known lock among the counters
// limits names lasts at now, and its key; 0 if none is known. limits is
// called only when some lock is known at all.
func (v *lockView) refusal(now time.Time, limits func() []account.Limit) (time.Duration, string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if now.Sub(v.refreshed) >= lockRefresh && !v.refreshing && v.store != nil {
		v.refreshing = true
		go v.refresh(now)
	}
	if len(v.until) == 0 {
		return 0, ""
	}
	var wait time.Duration
	var key string
	for _, l := range limits() {
		if until, ok := v.until[l.Key]; ok && until.Sub(now) > wait {
			wait, key = until.Sub(now), l.Key
		}
	}
	return wait, key
}

// refresh replaces the view by the locks the store holds at now: the
// store is the authority, so a lock an operator lifted is lifted here too.
func (v *lockView) refresh(now time.Time) {
	counters, err := v.store.Counters()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.refreshing = false
	v.refreshed = now
	if err != nil {
		if v.logger != nil {
			v.logger.Warn("totp_auth: read locks for app passwords: " + err.Error())
		}
		return
	}
	fresh := make(map[string]time.Time)
	for _, c := range counters {
		if c.Locked(now) && len(fresh) < cacheSize {
			fresh[c.Key] = c.LockedUntil
		}
	}
	v.until = fresh
}
