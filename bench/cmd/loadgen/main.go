// Command loadgen is the load generator behind bench/run.sh. It measures
// what totp_auth costs a request that already holds a session, next to
// plain reverse_proxy and Caddy's basic_auth in the same Caddy process, and
// how signed-in users fare while a flood of wrong passwords comes in
// (SPEC §6).
//
// It has small subcommands so that run.sh needs nothing but bash and Go:
//
//	loadgen freeport -n 5          print free 127.0.0.1 ports, one per line
//	loadgen upstream -addr A       serve a small fixed body on A (the upstream)
//	loadgen wait -addr A,B,...     wait until every address accepts connections
//	loadgen run ...                sign in, run the rounds and the flood, print the report
//	loadgen postgres -dsn-file F   run a throwaway PostgreSQL cluster until stopped
//	loadgen hash -password P       print a bcrypt hash of P at the lowest cost
//	loadgen cluster ...            two instances on one PostgreSQL: failed attempts/s, logout propagation
//	loadgen users -n N ...         what N database users cost bbolt and PostgreSQL
//	loadgen portal ...             forward_auth to verify against forward_auth to a plain 200
//
// Everything it dials or listens on is a 127.0.0.1 address, and every loop
// in it is bounded both in time and in count.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "freeport":
		err = freePorts(args)
	case "upstream":
		err = upstream(args)
	case "wait":
		err = waitReady(args)
	case "run":
		err = run(args)
	case "postgres":
		err = runPostgres(args)
	case "cluster":
		err = cluster(args)
	case "hash":
		err = hash(args)
	case "users":
		err = users(args)
	case "portal":
		err = portal(args)
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen freeport|upstream|wait|run|postgres|hash|cluster|users|portal [flags]; see bench/README.md")
}

// freePorts prints n distinct free ports on 127.0.0.1. All listeners stay
// open until every port is chosen, so the same port is never printed twice.
func freePorts(args []string) error {
	fs := flag.NewFlagSet("freeport", flag.ExitOnError)
	n := fs.Int("n", 1, "how many ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 64 {
		return fmt.Errorf("-n %d: ask for 1 to 64 ports", *n)
	}
	var ports []string
	for range *n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	}
	fmt.Println(strings.Join(ports, "\n"))
	return nil
}

// waitReady polls until every address accepts a TCP connection, or fails
// after the timeout, so run.sh never starts measuring against a Caddy that
// is still provisioning.
func waitReady(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	addrs := fs.String("addr", "", "comma-separated host:port list")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	for _, a := range strings.Split(*addrs, ",") {
		if err := checkLoopback(a); err != nil {
			return err
		}
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not accepting connections after %s: %w", a, *timeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// checkLoopback refuses any address that is not on 127.0.0.1: the
// benchmark must never send load anywhere else.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host != "127.0.0.1" {
		return errors.New("address " + addr + " is not on 127.0.0.1: the benchmark only runs on loopback")
	}
	return nil
}
