package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/securecookie"
	"github.com/totp-auth/totp_auth/gateway/account"
	"golang.org/x/crypto/bcrypt"
)

// counterOnlyStore keeps no account and takes every attempt; any other
// Store method panics, which the test would see.
type counterOnlyStore struct{ account.Store }

func (counterOnlyStore) Account(user string) (account.Account, error) {
	return account.Account{Name: user}, nil
}

// PasswordModels lists none, for the decoy hash.
func (counterOnlyStore) PasswordModels() ([]string, error) { return nil, nil }

func (counterOnlyStore) UpdateCounters(keys []string, fn func(map[string]*account.Counter) error) error {
	cs := make(map[string]*account.Counter, len(keys))
	for _, k := range keys {
		cs[k] = &account.Counter{Key: k}
	}
	return fn(cs)
}

func TestLogin_ACookieFailureIsAnsweredOnceWith500(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{
		Users:          map[string][]byte{"alice": hash},
		Optional2FA:    true,
		Store:          counterOnlyStore{},
		SessionHashKey: []byte(strings.Repeat("h", 32)), SessionBlockKey: []byte(strings.Repeat("b", 32)),
	})
	if err != nil {
		t.Fatal(err)
	}
	g.codec = &cookieCodec{sc: securecookie.New(nil, nil)} // every encode fails
	r := httptest.NewRequest(http.MethodPost, "/.totp-auth/login", strings.NewReader(`{"username":"alice","password":"pw"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json")
	w := httptest.NewRecorder()
	g.Handle(w, r)

	if w.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", w.Code)
	}
	dec := json.NewDecoder(w.Body)
	var first map[string]any
	if err := dec.Decode(&first); err != nil {
		t.Fatalf("body is not one JSON answer: %v", err)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); strings.TrimSpace(string(rest)) != "" || dec.More() {
		t.Errorf("a second answer follows the 500: %q", rest)
	}
}
