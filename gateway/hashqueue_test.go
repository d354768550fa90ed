package gateway

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestHashQueue_OneNetworkCannotHoldEveryPlace(t *testing.T) {
	l := newHashLimiter(1, 4)
	release := make(chan struct{})
	var served []string
	var mu sync.Mutex
	job := func(net string) func() {
		return func() {
			mu.Lock()
			served = append(served, net)
			mu.Unlock()
			<-release
		}
	}
	results := make(chan error, 16)
	start := func(net string) {
		go func() { results <- l.do(context.Background(), net, job(net)) }()
	}
	// The flooding network takes the worker and the whole queue.
	start("198.51.100.0/24")
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.running == 1 })
	for range 4 {
		start("198.51.100.0/24")
	}
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.waiting == 4 })
	if !l.saturated("198.51.100.0/24") {
		t.Fatal("a full queue is not saturated for the network that fills it")
	}
	if err := l.do(context.Background(), "198.51.100.0/24", func() {}); err != ErrBusy {
		t.Fatalf("fifth waiter of the flooding network: %v, want ErrBusy", err)
	}
	// Another network is not refused: it takes the flooder's newest place,
	// and that one is refused at once.
	if l.saturated("203.0.113.0/24") {
		t.Fatal("the queue refuses a network with nothing waiting")
	}
	start("203.0.113.0/24")
	if err := <-results; err != ErrBusy {
		t.Fatalf("the flooder's newest waiter: %v, want ErrBusy", err)
	}
	// It is served right after the running check, before the flooder's
	// older waiters.
	for range 5 {
		release <- struct{}{}
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(served) != 5 || served[1] != "203.0.113.0/24" {
		t.Fatalf("served %v: want the other network second", served)
	}
}

func TestHashQueue_AmongManyNetworksOneRarelyServedGetsAPlace(t *testing.T) {
	l := newHashLimiter(1, 3)
	release := make(chan struct{})
	results := make(chan error, 16)
	start := func(net string) {
		go func() { results <- l.do(context.Background(), net, func() { <-release }) }()
	}
	// Three flooding networks were each served before.
	l.mu.Lock()
	l.servedSince = time.Now()
	l.served["a"], l.served["b"], l.served["c"] = 2, 3, 1
	l.mu.Unlock()
	start("x") // holds the worker
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.running == 1 })
	for _, n := range []string{"a", "b", "c"} {
		start(n)
		waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.byNet[n]) == 1 })
	}
	// A network served as often as none of them takes the place of the
	// most served one; then none of them can take it back.
	start("user")
	if err := <-results; err != ErrBusy {
		t.Fatalf("most served network's waiter: %v, want ErrBusy", err)
	}
	l.mu.Lock()
	_, bWaits := l.byNet["b"]
	_, userWaits := l.byNet["user"]
	v := l.victim("b")
	l.mu.Unlock()
	if bWaits || !userWaits {
		t.Fatalf("after the swap: b waiting %v, user waiting %v", bWaits, userWaits)
	}
	if v == "user" {
		t.Fatal("the evicted network may take the place back")
	}
	close(release)
	for range 4 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
}

func TestHashQueue_CancelledWaiterGivesItsPlaceBack(t *testing.T) {
	l := newHashLimiter(1, 1)
	release := make(chan struct{})
	go func() { _ = l.do(context.Background(), "a", func() { <-release }) }()
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.running == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.do(ctx, "b", func() {}) }()
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.waiting == 1 })
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("cancelled waiter: %v", err)
	}
	close(release)
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.running == 0 && l.waiting == 0 })
	if err := l.do(context.Background(), "c", func() {}); err != nil {
		t.Fatalf("after the cancel: %v", err)
	}
}

func TestClientKey_IPv6CountsBySlash64(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "ip:192.0.2.7",
		"::ffff:192.0.2.7":     "ip:192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "ip:2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "ip:2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "ip:2001:db8:1:3::/64",
		"fe80::1%eth0":         "ip:fe80::/64",
		"not an address":       "ip:not an address",
	} {
		if got := ClientKey(in); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
