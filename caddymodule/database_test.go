package caddymodule

import (
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

func TestPruning_ForgetsCountersOfMadeUpNamesOnceTheirWindowIsOver(t *testing.T) {
	d := offlineDatabase(t)
	const window = 50 * time.Millisecond
	if err := d.hold(new(TOTPAuth), holder{lockout: window}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a, l, err := account.TakeAttempt(d.db, now, window, []account.Limit{{Key: "user:made-up", Max: 5}})
	if err != nil || l != nil {
		t.Fatalf("TakeAttempt: %v %v", l, err)
	}
	if _, err := account.FailAttempt(d.db, a, now, window); err != nil {
		t.Fatal(err)
	}
	d.startPruning()
	defer func() {
		close(d.stopPruning)
		<-d.pruningDone
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := d.db.Counter("user:made-up")
		if err != nil {
			t.Fatal(err)
		}
		if c.Failures == 0 && c.WindowStart.IsZero() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter still stored after its window: %+v", c)
		}
	}
}
