package storage

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// BenchmarkSessionState measures the per-request read of a signed-in
// user's generation and flags.
func BenchmarkSessionState(b *testing.B) {
	db := openTest(b, tempPath(b), mustKey(b))
	for i := range 1000 {
		if _, err := account.BumpGeneration(db, "user"+strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.SessionState("user500"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkFailedAttempts records failed attempts as a flood of wrong
// passwords would: many at once, each under its own key (a new user name
// each, from a
// new address each), each a TakeAttempt and a FailAttempt. It reports failures/s.
func BenchmarkFailedAttempts(b *testing.B) {
	db := openTest(b, tempPath(b), mustKey(b))
	var n atomic.Int64
	window := 15 * time.Minute
	b.SetParallelism(100) // 100 goroutines per CPU: a flood, not one client
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := strconv.FormatInt(n.Add(1), 10)
			limits := []account.Limit{{Key: "user:flood" + i, Max: 5}, {Key: "ip:flood" + i, Max: 50}}
			a, lock, err := account.TakeAttempt(db, time.Now(), window, limits)
			if err != nil || lock != nil {
				b.Error(err, lock)
				return
			}
			if _, err := account.FailAttempt(db, a, time.Now(), window); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "failures/s")
}
