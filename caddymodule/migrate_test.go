package caddymodule

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/totp-auth/totp_auth/internal/operator"
	"github.com/totp-auth/totp_auth/internal/pgtest"
	"github.com/totp-auth/totp_auth/storage"
	"github.com/totp-auth/totp_auth/storage/postgres"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// A user removed before the move to PostgreSQL and added again after it
// starts from the generation the removal left, so a session ended by
// `user remove` stays ended (SPEC §4 rule 18, §13).
func TestMigrate_RemovedUsersStayRemovedForOldSessions(t *testing.T) {
	key, err := secrets.ParseKey(key64)
	if err != nil {
		t.Fatal(err)
	}
	src, err := storage.Open(filepath.Join(t.TempDir(), "totp.db"), storage.Options{Keys: []secrets.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	hash := []byte("$2a$04$0123456789012345678901uQ3YjR0bLqzTq2wIh7JdPd4mTkY5zvW")
	if err := operator.SetPassword(src, "bob", hash); err != nil {
		t.Fatal(err)
	}
	st, err := src.SessionState("bob")
	if err != nil {
		t.Fatal(err)
	}
	cookieGeneration := st.Generation // what a session of bob's carries
	if err := operator.RemoveAccount(src, "bob"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), postgresOpenTimeout)
	defer cancel()
	dst, err := postgres.Open(ctx, pgtest.Database(t), postgres.Options{Keys: []secrets.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	copied, err := copyStore(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(copied, "the generations of 1 removed users") {
		t.Errorf("migrate says %q, want it to count the removed user", copied)
	}
	if err := operator.SetPassword(dst, "bob", hash); err != nil {
		t.Fatal(err)
	}
	st, err = dst.SessionState("bob")
	if err != nil {
		t.Fatal(err)
	}
	if st.Generation <= cookieGeneration {
		t.Fatalf("bob added again after the move has generation %d: a session of the removed bob (generation %d) is valid again",
			st.Generation, cookieGeneration)
	}
}
