package gateway

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// ErrBusy means the hashing queue is full; the request is refused at once.
var ErrBusy = errors.New("too many password checks in progress")

// hashLimiter bounds password and backup-code hashing to a few workers and
// a short queue, so a flood of guesses cannot starve requests that already
// hold a session: the excess is refused at once rather than piling up
// (SPEC §4 rule 13, §6).
//
// The queue is shared fairly between client networks (see clientPrefix):
// waiting requests are served round-robin by network, and when the queue
// is full a request from a network with fewer waiting than the network
// with the most takes the place of that network's newest, which is
// refused at once. One network, however many addresses it uses, then
// holds no more than its share of the slots, and a sign-in from anywhere
// else waits behind at most one request of it. Between networks with as
// many waiting, a network served less in the last half minute takes the
// place of one served more, so that many networks flooding at once still
// leave a place for one that is rarely here.
type hashLimiter struct {
	workers, queue int

	mu      sync.Mutex
	running int
	waiting int
	// byNet holds each network's waiting requests, oldest first; order
	// lists the networks with waiting requests in the order they are served.
	byNet map[string][]*hashWaiter
	order []string
	// served counts the checks each network was given since servedSince.
	served      map[string]int
	servedSince time.Time
}

// servedWindow is how long served counts last before they start over.
const servedWindow = 30 * time.Second

// hashWaiter is one request waiting for a worker. ready receives nil when
// it was given a worker, ErrBusy when it lost its place.
type hashWaiter struct {
	ready chan error
}

func newHashLimiter(workers, queue int) *hashLimiter {
	return &hashLimiter{workers: workers, queue: queue, byNet: make(map[string][]*hashWaiter), served: make(map[string]int)}
}

// saturated reports whether a request from network net would be refused
// right now, so a flood can be answered before it costs any database work.
func (l *hashLimiter) saturated(net string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running >= l.workers && l.waiting >= l.queue && l.victim(net) == ""
}

// victim returns the network whose newest waiting request a request from
// net may take the place of in a full queue, or "" if none: one with at
// least two more waiting than net, or one more and served more often. In
// both cases net would not take the place back, so places never swap
// back and forth.
func (l *hashLimiter) victim(net string) string {
	mine, used := len(l.byNet[net]), l.served[net]
	best, most, bestUsed := "", 0, 0
	for _, n := range l.order {
		c, u := len(l.byNet[n]), l.served[n]
		if c > most || c == most && u > bestUsed {
			best, most, bestUsed = n, c, u
		}
	}
	if most >= mine+2 || most == mine+1 && bestUsed > used {
		return best
	}
	return ""
}

// serve counts a check given to net. l.mu must be held.
func (l *hashLimiter) serve(net string) {
	if now := time.Now(); now.Sub(l.servedSince) > servedWindow || len(l.served) >= 4096 {
		clear(l.served)
		l.servedSince = now
	}
	l.served[net]++
}

// do runs fn when a worker is free, or returns ErrBusy when the queue is
// full (or its place in the queue is taken, see hashLimiter).
func (l *hashLimiter) do(ctx context.Context, net string, fn func()) error {
	l.mu.Lock()
	if l.running < l.workers && l.waiting == 0 {
		l.running++
		l.serve(net)
		l.mu.Unlock()
		defer l.finish(net)
		fn()
		return nil
	}
	if l.waiting >= l.queue {
		v := l.victim(net)
		if v == "" {
			l.mu.Unlock()
			return ErrBusy
		}
		q := l.byNet[v]
		l.remove(v, q[len(q)-1]).ready <- ErrBusy
	}
	w := &hashWaiter{ready: make(chan error, 1)}
	if len(l.byNet[net]) == 0 {
		l.order = append(l.order, net)
	}
	l.byNet[net] = append(l.byNet[net], w)
	l.waiting++
	l.mu.Unlock()

	select {
	case err := <-w.ready:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		l.mu.Lock()
		queued := l.remove(net, w) != nil
		l.mu.Unlock()
		if !queued && <-w.ready == nil {
			l.finish(net) // given a worker just now: hand it on
		}
		return ctx.Err()
	}
	defer l.finish(net)
	fn()
	return nil
}

// remove takes w out of net's waiting requests and returns it, or nil if
// it is not waiting any more. l.mu must be held.
func (l *hashLimiter) remove(net string, w *hashWaiter) *hashWaiter {
	q := l.byNet[net]
	for i, x := range q {
		if x != w {
			continue
		}
		q = append(q[:i:i], q[i+1:]...)
		l.waiting--
		if len(q) > 0 {
			l.byNet[net] = q
			return w
		}
		delete(l.byNet, net)
		for j, n := range l.order {
			if n == net {
				l.order = append(l.order[:j:j], l.order[j+1:]...)
				break
			}
		}
		return w
	}
	return nil
}

// finish frees the worker a request from net held and gives it to the
// next network in turn; net, just served, goes to the back of the line.
func (l *hashLimiter) finish(net string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running--
	for i, n := range l.order {
		if n == net {
			l.order = append(append(l.order[:i:i], l.order[i+1:]...), net)
			break
		}
	}
	for l.running < l.workers && l.waiting > 0 {
		next := l.order[0]
		w := l.remove(next, l.byNet[next][0])
		if len(l.byNet[next]) > 0 {
			// Still waiting: to the back of the line of networks.
			l.order = append(l.order[1:], next)
		}
		l.running++
		l.serve(next)
		w.ready <- nil
	}
}

// hash runs fn in the hashing queue, under r's network's share.
func (g *Gateway) hash(r *http.Request, fn func()) error {
	return g.hashes.do(r.Context(), g.clientPrefix(r), fn)
}
