package postgres

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// 100 guesses at once, spread over two instances, evaluate at most Max:
// each takes its slot under the advisory locks before it is evaluated.
func TestLockout_ParallelGuessesOverTwoInstancesEvaluateAtMostMax(t *testing.T) {
	t.Parallel()
	instances := twoInstances(t)
	const max, guesses = 5, 100
	limits := []account.Limit{{Key: "user:alice", Max: max}, {Key: "ip:192.0.2.1", Max: 50}}
	var evaluated atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := instances[i%2]
			<-start
			a, lock, err := account.TakeAttempt(db, t0, 15*time.Minute, limits)
			if err != nil {
				t.Error(err)
				return
			}
			if lock != nil {
				return
			}
			evaluated.Add(1)
			if _, err := account.FailAttempt(db, a, t0, 15*time.Minute); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := evaluated.Load(); n > max {
		t.Fatalf("%d guesses evaluated, want at most %d", n, max)
	}
	var c account.Counter
	err := instances[0].UpdateCounters([]string{"user:alice"}, func(cs map[string]*account.Counter) error {
		c = *cs["user:alice"]
		return errors.New("read only")
	})
	if err == nil || err.Error() != "read only" {
		t.Fatal(err)
	}
	if c.Failures != int(evaluated.Load()) || c.InFlight != 0 {
		t.Fatalf("counter %+v after %d failures", c, evaluated.Load())
	}
}

func TestPruneCounters_OneInstanceAtATime(t *testing.T) {
	t.Parallel()
	instances := twoInstances(t)
	a, b := instances[0], instances[1]
	window := time.Minute
	limits := []account.Limit{{Key: "user:alice", Max: 5}}
	at, _, err := account.TakeAttempt(a, t0, window, limits)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := account.FailAttempt(a, at, t0, window); err != nil {
		t.Fatal(err)
	}

	// b holds the pruning lock: a prunes nothing meanwhile.
	ctx := t.Context()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", lockPruning, b.schema); err != nil {
		t.Fatal(err)
	}
	if n, err := account.PruneCounters(a, t0.Add(2*window), window); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v) while another instance prunes, want 0", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := account.PruneCounters(a, t0.Add(window/2), window); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v) inside the window, want 0", n, err)
	}
	if n, err := account.PruneCounters(a, t0.Add(2*window), window); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v) after the window, want 1", n, err)
	}
}
