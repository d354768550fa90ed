package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/totp-auth/totp_auth/internal/pgtest"
)

// runPostgres runs a throwaway PostgreSQL cluster (the tests' own, see
// internal/pgtest) with PostgreSQL's durable defaults, writes a connection
// string for an empty database to -dsn-file, and stops the cluster on
// SIGINT or SIGTERM, or after -lifetime.
func runPostgres(args []string) error {
	fs := flag.NewFlagSet("postgres", flag.ExitOnError)
	dsnFile := fs.String("dsn-file", "", "write the connection string here")
	lifetime := fs.Duration("lifetime", 30*time.Minute, "stop after this long at the latest")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dsnFile == "" {
		return fmt.Errorf("postgres: -dsn-file is required")
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	s, err := pgtest.StartWith(pgtest.Options{Durable: true})
	if err != nil {
		return err
	}
	defer s.Close()
	dsn, err := s.NewDatabase()
	if err != nil {
		return err
	}
	if err := os.WriteFile(*dsnFile+".tmp", []byte(dsn), 0o600); err != nil {
		return err
	}
	if err := os.Rename(*dsnFile+".tmp", *dsnFile); err != nil {
		return err
	}
	select {
	case <-stop:
	case <-time.After(*lifetime):
	}
	return nil
}
