package account

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// These tests hold the counter transitions to their rules on plain values;
// internal/storetest holds the stores that run them to the same rules.

var (
	counterT0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	alice     = Limit{Key: "user:alice", Max: 3}
	clientIP  = Limit{Key: "ip:192.0.2.1", Max: 10}
)

const counterWindow = 15 * time.Minute

func at(d time.Duration) time.Time { return counterT0.Add(d) }

// loadOnce is a load over stored that fails the test if a key is loaded twice:
// a transition must read its own changes back, not the store.
func loadOnce(t *testing.T, stored ...Counter) func(string) (Counter, error) {
	t.Helper()
	loaded := make(map[string]bool)
	return func(key string) (Counter, error) {
		if loaded[key] {
			t.Errorf("counter %q loaded twice", key)
		}
		loaded[key] = true
		for _, c := range stored {
			if c.Key == key {
				return c, nil
			}
		}
		return Counter{Key: key}, nil
	}
}

func TestTakeSlots(t *testing.T) {
	tests := []struct {
		name     string
		stored   []Counter
		limits   []Limit
		now      time.Time
		wantLock *Lock
		wantSave []Counter
	}{{
		name:     "a first attempt takes a slot and starts the window",
		limits:   []Limit{alice},
		now:      at(time.Minute),
		wantSave: []Counter{{Key: alice.Key, WindowStart: at(time.Minute), InFlight: 1}},
	}, {
		name:     "an attempt within the window keeps its start",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 1}},
		limits:   []Limit{alice},
		now:      at(time.Minute),
		wantSave: []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 1, InFlight: 1}},
	}, {
		name:     "failures expire with their window",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 2}},
		limits:   []Limit{alice},
		now:      at(counterWindow),
		wantSave: []Counter{{Key: alice.Key, WindowStart: at(counterWindow), InFlight: 1}},
	}, {
		name:     "slots in flight count against max and refuse only briefly",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 1, InFlight: 2}},
		limits:   []Limit{alice},
		now:      at(time.Minute),
		wantLock: &Lock{Key: alice.Key, RetryAfter: time.Second},
	}, {
		name:     "a refusal by busy slots never outlasts the window",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), InFlight: 3}},
		limits:   []Limit{alice},
		now:      at(counterWindow - time.Millisecond),
		wantLock: &Lock{Key: alice.Key, RetryAfter: time.Millisecond},
	}, {
		name:     "a locked counter refuses for the rest of its lock and is not written",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 3, LockedUntil: at(counterWindow + 5*time.Minute)}},
		limits:   []Limit{alice},
		now:      at(counterWindow),
		wantLock: &Lock{Key: alice.Key, RetryAfter: 5 * time.Minute},
	}, {
		name:     "a lock that ended leaves nothing behind",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 3, LockedUntil: at(counterWindow)}},
		limits:   []Limit{alice},
		now:      at(counterWindow),
		wantSave: []Counter{{Key: alice.Key, WindowStart: at(counterWindow), InFlight: 1}},
	}, {
		name:     "failures over a lowered max refuse until the window ends",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 5}},
		limits:   []Limit{alice},
		now:      at(time.Minute),
		wantLock: &Lock{Key: alice.Key, RetryAfter: counterWindow - time.Minute},
	}, {
		name:     "a refusal by one limit takes no slot in any",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 3, LockedUntil: at(counterWindow)}},
		limits:   []Limit{clientIP, alice},
		now:      at(time.Minute),
		wantLock: &Lock{Key: alice.Key, RetryAfter: counterWindow - time.Minute},
	}, {
		name: "the longest refusal is the one returned",
		stored: []Counter{
			{Key: alice.Key, WindowStart: at(0), InFlight: 3},
			{Key: clientIP.Key, WindowStart: at(0), Failures: 10, LockedUntil: at(counterWindow)},
		},
		limits:   []Limit{alice, clientIP},
		now:      at(time.Minute),
		wantLock: &Lock{Key: clientIP.Key, RetryAfter: counterWindow - time.Minute},
	}, {
		name:   "an attempt takes a slot in every limit",
		limits: []Limit{alice, clientIP},
		now:    at(0),
		wantSave: []Counter{
			{Key: alice.Key, WindowStart: at(0), InFlight: 1},
			{Key: clientIP.Key, WindowStart: at(0), InFlight: 1},
		},
	}, {
		name:     "a key named twice takes two slots",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), InFlight: 1}},
		limits:   []Limit{alice, alice},
		now:      at(0),
		wantSave: []Counter{{Key: alice.Key, WindowStart: at(0), InFlight: 3}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, lock, save, err := takeSlots(tt.now, counterWindow, tt.limits, loadOnce(t, tt.stored...))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(lock, tt.wantLock) {
				t.Errorf("lock = %+v, want %+v", lock, tt.wantLock)
			}
			if !reflect.DeepEqual(save, tt.wantSave) {
				t.Errorf("save = %+v, want %+v", save, tt.wantSave)
			}
			if lock != nil {
				if len(a.Limits) != 0 || len(a.WindowStarts) != 0 {
					t.Errorf("a refused take returned the attempt %+v", a)
				}
				return
			}
			if !reflect.DeepEqual(a.Limits, tt.limits) || len(a.WindowStarts) != len(tt.limits) {
				t.Fatalf("attempt = %+v, want one window start for each of %+v", a, tt.limits)
			}
			for i, start := range a.WindowStarts {
				if start.IsZero() {
					t.Errorf("window start %d of the attempt is zero", i)
				}
			}
		})
	}
}

func TestFailSlots(t *testing.T) {
	slot := func(start time.Time, limits ...Limit) Attempt {
		a := Attempt{Limits: limits}
		for range limits {
			a.WindowStarts = append(a.WindowStarts, start)
		}
		return a
	}
	tests := []struct {
		name      string
		stored    []Counter
		attempt   Attempt
		now       time.Time
		wantLocks []Lock
		wantSave  []Counter
	}{{
		name:     "a failure below max frees the slot and counts",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 1, InFlight: 1}},
		attempt:  slot(at(0), alice),
		now:      at(time.Minute),
		wantSave: []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 2}},
	}, {
		name:      "the failure reaching max locks for the window from that failure",
		stored:    []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 2, InFlight: 1}},
		attempt:   slot(at(0), alice),
		now:       at(5 * time.Minute),
		wantLocks: []Lock{{Key: alice.Key, RetryAfter: counterWindow}},
		wantSave:  []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 3, LockedUntil: at(5*time.Minute + counterWindow)}},
	}, {
		name:     "a failure while locked counts but neither extends the lock nor reports it",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 3, InFlight: 1, LockedUntil: at(counterWindow)}},
		attempt:  slot(at(0), alice),
		now:      at(time.Minute),
		wantSave: []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 4, LockedUntil: at(counterWindow)}},
	}, {
		name:     "a failure after the window starts a new one",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 2, InFlight: 1}},
		attempt:  slot(at(0), alice),
		now:      at(counterWindow),
		wantSave: []Counter{{Key: alice.Key, WindowStart: at(counterWindow), Failures: 1}},
	}, {
		name:     "a failure from an older window frees no slot of a newer one",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(counterWindow), InFlight: 1}},
		attempt:  slot(at(0), alice),
		now:      at(counterWindow),
		wantSave: []Counter{{Key: alice.Key, WindowStart: at(counterWindow), Failures: 1, InFlight: 1}},
	}, {
		name: "a failure counts in every limit and returns each lock",
		stored: []Counter{
			{Key: alice.Key, WindowStart: at(0), Failures: 2, InFlight: 1},
			{Key: clientIP.Key, WindowStart: at(0), Failures: 4, InFlight: 1},
		},
		attempt:   slot(at(0), alice, clientIP),
		now:       at(0),
		wantLocks: []Lock{{Key: alice.Key, RetryAfter: counterWindow}},
		wantSave: []Counter{
			{Key: alice.Key, WindowStart: at(0), Failures: 3, LockedUntil: at(counterWindow)},
			{Key: clientIP.Key, WindowStart: at(0), Failures: 5},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			locks, save, err := failSlots(tt.attempt, tt.now, counterWindow, loadOnce(t, tt.stored...))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(locks, tt.wantLocks) {
				t.Errorf("locks = %+v, want %+v", locks, tt.wantLocks)
			}
			if !reflect.DeepEqual(save, tt.wantSave) {
				t.Errorf("save = %+v, want %+v", save, tt.wantSave)
			}
		})
	}
}

func TestReleaseSlots(t *testing.T) {
	tests := []struct {
		name     string
		stored   []Counter
		start    time.Time
		wantSave []Counter
	}{{
		name:     "a release gives the slot back and keeps the failures",
		stored:   []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 2, InFlight: 1}},
		start:    at(0),
		wantSave: []Counter{{Key: alice.Key, WindowStart: at(0), Failures: 2}},
	}, {
		name:   "a release from an older window frees nothing",
		stored: []Counter{{Key: alice.Key, WindowStart: at(counterWindow), InFlight: 1}},
		start:  at(0),
	}, {
		name:  "a release of a counter that is gone writes nothing",
		start: at(0),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Attempt{Limits: []Limit{alice}, WindowStarts: []time.Time{tt.start}}
			save, err := releaseSlots(a, loadOnce(t, tt.stored...))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(save, tt.wantSave) {
				t.Errorf("save = %+v, want %+v", save, tt.wantSave)
			}
		})
	}
}

func TestCounter_WithoutFailuresKeepsSlotsInFlight(t *testing.T) {
	c := Counter{Key: alice.Key, WindowStart: at(0), Failures: 3, InFlight: 1, LockedUntil: at(counterWindow)}
	want := Counter{Key: alice.Key, WindowStart: at(0), InFlight: 1}
	if got := c.WithoutFailures(); got != want {
		t.Errorf("WithoutFailures = %+v, want %+v", got, want)
	}
	if !(Counter{Key: alice.Key, WindowStart: at(0)}).Empty() {
		t.Error("a counter with neither failures, slots nor lock is not Empty")
	}
}

func TestTransitions_RefuseWhatNoStoreHandedOut(t *testing.T) {
	load := func(string) (Counter, error) {
		t.Error("a refused call loaded a counter")
		return Counter{}, nil
	}
	if _, _, _, err := takeSlots(at(0), counterWindow, []Limit{{Key: alice.Key}}, load); err == nil {
		t.Error("takeSlots accepted a limit of 0 failures")
	}
	if _, _, _, err := takeSlots(at(0), 0, []Limit{alice}, load); err == nil {
		t.Error("takeSlots accepted a window of 0")
	}
	bad := Attempt{Limits: []Limit{alice}}
	if _, err := releaseSlots(bad, load); err == nil {
		t.Error("releaseSlots accepted an attempt without window starts")
	}
	if _, _, err := failSlots(bad, at(0), counterWindow, load); err == nil {
		t.Error("failSlots accepted an attempt without window starts")
	}
}

func TestTransitions_PassOnLoadErrors(t *testing.T) {
	broken := errors.New("disk on fire")
	load := func(string) (Counter, error) { return Counter{}, broken }
	a := Attempt{Limits: []Limit{alice}, WindowStarts: []time.Time{at(0)}}
	if _, _, _, err := takeSlots(at(0), counterWindow, []Limit{alice}, load); !errors.Is(err, broken) {
		t.Errorf("takeSlots = %v, want the load error", err)
	}
	if _, err := releaseSlots(a, load); !errors.Is(err, broken) {
		t.Errorf("releaseSlots = %v, want the load error", err)
	}
	if _, _, err := failSlots(a, at(0), counterWindow, load); !errors.Is(err, broken) {
		t.Errorf("failSlots = %v, want the load error", err)
	}
}
