package storage

import (
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

func TestUpdateCounters_RefusalOfALockedCounterWritesNothing(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	limits := []account.Limit{{Key: "user:x", Max: 1}}
	a, _, err := account.TakeAttempt(db, t0, time.Hour, limits)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := account.FailAttempt(db, a, t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	writes := func() int64 { st := db.bolt.Stats(); return st.TxStats.GetWrite() }
	before := writes()
	for range 50 {
		_, lock, err := account.TakeAttempt(db, t0.Add(time.Minute), time.Hour, limits)
		if err != nil || lock == nil {
			t.Fatalf("locked counter: lock %v, err %v", lock, err)
		}
	}
	if after := writes(); after != before {
		t.Fatalf("50 refusals of a locked counter wrote %d pages", after-before)
	}
	// A change still goes through.
	if _, _, err := account.TakeAttempt(db, t0.Add(2*time.Hour), time.Hour, limits); err != nil {
		t.Fatal(err)
	}
	if writes() == before {
		t.Fatal("an attempt after the lock wrote nothing")
	}
}
