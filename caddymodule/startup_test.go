package caddymodule

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/internal/operator"
	"github.com/totp-auth/totp_auth/storage"
)

// listingStore counts the listings of every account made through it: what
// start-up and reload must never do, since they would cost as much as the
// user base is large (SPEC §6).
type listingStore struct {
	store
	listings atomic.Int64
}

func (s *listingStore) Accounts() ([]gateway.Account, error) {
	s.listings.Add(1)
	return s.store.Accounts()
}

// listedDatabase opens a database in a temporary folder, with stored users
// added, behind a listingStore.
func listedDatabase(t *testing.T, stored ...string) (*database, *listingStore) {
	t.Helper()
	key, err := storage.ParseKey(key64)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "totp.db")
	db, err := storage.Open(path, storage.Options{Keys: []storage.Key{key}, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	for _, name := range stored {
		if err := operator.SetPassword(db, name, mustHash(t, "pw")); err != nil {
			t.Fatal(err)
		}
	}
	s := &listingStore{store: db}
	return newDatabase(path, s, keySet{keys: []storage.Key{key}}, zap.NewNop()), s
}

func TestHold_LooksUpOnlyTheNamesOfItsUserLines(t *testing.T) {
	d, s := listedDatabase(t, "dave", "erin", "frank")
	err := d.hold(new(TOTPAuth), holder{users: map[string]bool{"carol": true, "grace": true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.hold(new(TOTPAuth), holder{users: map[string]bool{"erin": true, "carol": true}}); err == nil {
		t.Error("a `user` line for erin, who has a password in the database, was accepted")
	}
	if n := s.listings.Load(); n != 0 {
		t.Errorf("holding the database listed every account %d times; it must look up only the names of the `user` lines", n)
	}
}
