package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// upstreamBody is what every proxied request gets back: small and fixed,
// so the upstream costs as little as possible and the same for every target.
const upstreamBody = "hello from the bench upstream\n"

// upstream serves upstreamBody until it is signalled or its lifetime runs
// out; the lifetime is a backstop in case run.sh's trap never fires.
func upstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	addr := fs.String("addr", "", "127.0.0.1:port to listen on")
	lifetime := fs.Duration("lifetime", time.Hour, "exit after this long in any case")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*addr); err != nil {
		return err
	}
	length := strconv.Itoa(len(upstreamBody))
	srv := &http.Server{
		Addr: *addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Type"] = []string{"text/plain; charset=utf-8"}
			h["Content-Length"] = []string{length}
			_, _ = w.Write([]byte(upstreamBody))
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("upstream on %s: %w", *addr, err)
	case <-ctx.Done():
		shut, done := context.WithTimeout(context.Background(), 2*time.Second)
		defer done()
		return srv.Shutdown(shut)
	}
}
