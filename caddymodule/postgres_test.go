package caddymodule

import (
	"strings"
	"testing"

	"github.com/totp-auth/totp_auth/internal/pgtest"
)

func TestProvision_PostgresRequiresEncryptionKey(t *testing.T) {
	err := provision(t, &TOTPAuth{Postgres: "host=/nonexistent dbname=totp"})
	if err == nil || !strings.Contains(err.Error(), "encryption_key is required with postgres") {
		t.Fatalf("err = %v, want a refusal naming encryption_key", err)
	}
}

func TestProvision_PostgresAndDBPathAreExclusive(t *testing.T) {
	err := provision(t, &TOTPAuth{Postgres: "host=/nonexistent dbname=totp", DBPath: "/tmp/x.db", EncryptionKey: key64})
	if err == nil || !strings.Contains(err.Error(), "db_path and postgres are both set") {
		t.Fatalf("err = %v, want a refusal", err)
	}
}

func TestProvision_PostgresPasswordNeverInErrors(t *testing.T) {
	err := provision(t, &TOTPAuth{Postgres: "postgres://caddy:hunter2@127.0.0.1:1/totp?connect_timeout=1", EncryptionKey: key64})
	if err == nil {
		t.Fatal("Provision succeeded without a database")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %q shows the password", err)
	}
}

func TestProvision_TwoHandlersWithOnePostgresShareTheConnections(t *testing.T) {
	dsn := pgtest.Database(t)
	a := &TOTPAuth{Postgres: dsn, EncryptionKey: key64}
	b := &TOTPAuth{Postgres: dsn, EncryptionKey: key64}
	mustProvision(t, a)
	mustProvision(t, b)
	if n, _ := databases.References(postgresPoolKey(dsn)); n != 2 {
		t.Fatalf("pool references = %d, want 2", n)
	}
	if a.db != b.db {
		t.Fatal("two handlers naming one connection string opened two stores")
	}
	// A reload: the replacement shares, the old one lets go, and the store
	// stays open for the replacement.
	replacement := &TOTPAuth{Postgres: dsn, EncryptionKey: key64, Issuer: "changed"}
	mustProvision(t, replacement)
	for _, h := range []*TOTPAuth{a, b} {
		if err := h.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := replacement.db.db.SessionState("alice"); err != nil {
		t.Fatalf("the store closed under the replacement: %v", err)
	}
}

func TestProvision_PostgresWithAnotherKeyIsRefused(t *testing.T) {
	dsn := pgtest.Database(t)
	mustProvision(t, &TOTPAuth{Postgres: dsn, EncryptionKey: key64})
	err := provision(t, &TOTPAuth{Postgres: dsn + " application_name=other", EncryptionKey: key64b})
	if err == nil || !strings.Contains(err.Error(), "encryption_key") {
		t.Fatalf("err = %v, want a refusal naming the key", err)
	}
	if strings.Contains(err.Error(), key64b) || strings.Contains(err.Error(), key64) {
		t.Errorf("error %q reveals a key", err)
	}
}
