package gateway

import (
	"sync"
	"time"
)

// activity remembers, per session id, when a request last proved the
// session, for the requests that cannot slide the cookie: a verify answer
// goes through another proxy, which drops Set-Cookie from a 2xx. The idle
// time of a session is measured from the later of the cookie's own
// LastSeen and what activity remembers.
//
// It lives in this process only. After a restart a session's idle time
// counts from its cookie again, which can end it sooner, never later.
// Entries are in whole seconds, so a busy session takes the write lock at
// most once a second.
type activity struct {
	mu   sync.RWMutex
	seen map[uint64]int64
	// pruned is when entries older than the idle timeout were last dropped.
	pruned int64
}

// maxActivity bounds the sessions remembered. When full after pruning, the
// map starts over: those sessions count their idle time from their
// cookies again (sooner, never later).
const maxActivity = 100_000

// lastSeen returns the later of cookie and the remembered activity of id.
func (a *activity) lastSeen(id uint64, cookie time.Time) time.Time {
	a.mu.RLock()
	s, ok := a.seen[id]
	a.mu.RUnlock()
	if ok && s > cookie.Unix() {
		return time.Unix(s, 0)
	}
	return cookie
}

// touch records that session id was used at now. idle is the idle timeout,
// after which an entry is of no more use.
func (a *activity) touch(id uint64, now time.Time, idle time.Duration) {
	sec := now.Unix()
	a.mu.RLock()
	s, ok := a.seen[id]
	a.mu.RUnlock()
	if ok && s >= sec {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = make(map[uint64]int64)
	}
	if len(a.seen) >= maxActivity || sec-a.pruned >= int64(idle/time.Second) {
		cutoff := sec - int64(idle/time.Second)
		for k, v := range a.seen {
			if v <= cutoff {
				delete(a.seen, k)
			}
		}
		a.pruned = sec
		if len(a.seen) >= maxActivity {
			a.seen = make(map[uint64]int64)
		}
	}
	if a.seen[id] < sec {
		a.seen[id] = sec
	}
}
