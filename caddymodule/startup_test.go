package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/operator"
	"github.com/totp-auth/totp_auth/storage"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// listingStore counts the listings of every account made through it: what
// start-up and reload must never do, since they would cost as much as the
// user base is large (SPEC §6).
type listingStore struct {
	store
	listings atomic.Int64
}

func (s *listingStore) Accounts() ([]account.Account, error) {
	s.listings.Add(1)
	return s.store.Accounts()
}

// listedDatabase opens a database in a temporary folder, with stored users
// added, behind a listingStore.
func listedDatabase(t *testing.T, stored ...string) (*database, *listingStore) {
	t.Helper()
	key, err := secrets.ParseKey(key64)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "totp.db")
	db, err := storage.Open(path, storage.Options{Keys: []secrets.Key{key}, LockTimeout: time.Second})
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
	return newDatabase(path, s, keySet{keys: []secrets.Key{key}}, zap.NewNop()), s
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

func TestProvision_StartAndReloadDoNotListAccounts(t *testing.T) {
	stored := make([]string, 50)
	for i := range stored {
		stored[i] = fmt.Sprintf("user%02d", i)
	}
	d, s := listedDatabase(t, stored...)
	if _, _, err := databases.LoadOrNew(d.path, func() (caddy.Destructor, error) { return d, nil }); err != nil {
		t.Fatal(err)
	}
	hash := string(mustHash(t, "pw"))
	start := func(users map[string]string) (*TOTPAuth, caddy.Context) {
		t.Helper()
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		h := &TOTPAuth{DBPath: d.path, EncryptionKey: key64, Users: users}
		if err := h.Provision(ctx); err != nil {
			t.Fatalf("Provision: %v", err)
		}
		return h, ctx
	}
	old, _ := start(map[string]string{"carol": hash, "dave": hash})
	h, ctx := start(map[string]string{"carol": hash})
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	d.settle(ctx) // what a reload does once the new configuration is in force

	// A wrong password for an unknown name is checked against the decoy,
	// which is made from the kinds of stored hashes.
	r := httptest.NewRequest("POST", "/.totp-auth/login", strings.NewReader(`{"username":"nobody","password":"guess"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json")
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	if err := h.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusUnauthorized {
		t.Fatalf("sign-in of an unknown name answered %d (%v): %s", w.Code, err, w.Body)
	}
	if n := s.listings.Load(); n != 0 {
		t.Errorf("start, reload and the decoy listed every account %d times; they must read only the names of `user` lines and the kinds of stored hashes", n)
	}
	if st, err := d.db.SessionState("dave"); err != nil || st.Generation == 0 {
		t.Errorf("dave, whose `user` line the reload removed, is still signed in: %+v, %v", st, err)
	}
}
