package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The test binary's own cluster is stopped and started again: a test that
// runs alone may do that to it (Stop first waits for the databases being
// handed on).
func TestServer_StopsAndRestartsOnTheSameCluster(t *testing.T) {
	start := time.Now()
	s := Shared(t)
	t.Logf("cluster ready in %s", time.Since(start))
	dsn, err := s.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := exec("SELECT 1"); err == nil {
		t.Fatal("a stopped server accepted a connection")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := exec("SELECT x FROM kept"); err != nil {
		t.Fatalf("table lost across a restart: %v", err)
	}
}
