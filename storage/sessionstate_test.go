package storage

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// The gateway ends every session of a user by raising the generation
// (logout-all); a cached state must never hide that, however the reads
// and the write interleave.
func TestSessionState_NeverStaleAfterAWriteReturns(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := db.SessionState("alice"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		gen, err := account.BumpGeneration(db, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if st, err := db.SessionState("alice"); err != nil || st.Generation != gen {
			t.Fatalf("after BumpGeneration returned %d, SessionState says %d (%v)", gen, st.Generation, err)
		}
	}
	stop.Store(true)
	wg.Wait()
}

func TestSessionState_ReadAgainAfterReopen(t *testing.T) {
	path, key := tempPath(t), mustKey(t)
	db, err := Open(path, Options{Keys: []secrets.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := account.BumpGeneration(db, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again := openTest(t, path, key)
	if st, err := again.SessionState("alice"); err != nil || st.Generation != gen {
		t.Fatalf("SessionState after reopening = %+v, %v; want generation %d", st, err, gen)
	}
}

func TestSessionState_UnknownNamesAreNotRemembered(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	for i := 0; i < 100; i++ {
		if st, err := db.SessionState(fmt.Sprintf("nobody-%d", i)); err != nil || st != (account.SessionState{}) {
			t.Fatalf("unknown name: %+v, %v", st, err)
		}
	}
	n := 0
	db.states.m.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d unknown names are remembered", n)
	}
}
