package main

import (
	"flag"
	"fmt"
	"net"
	"runtime"
	"time"
)

// SPEC §6 target for portal mode: forward_auth to verify keeps this share
// of the requests/s of the same forward_auth to an endpoint that only
// answers 200.
const minPortalPct = 90.0

// portalConfig is what `loadgen portal` is told by run.sh.
type portalConfig struct {
	portal, verify, ok string // 127.0.0.1:port of the portal and the two forward_auth sites
	appHost            string // host name of the apps, under the portal's domain
	pid, upstreamPid   int
	clkTck             int
	user, password     string
	prefix, cookie     string
	rounds             int
	loadDur, warmDur   time.Duration
	conns              int
	maxRequests        int64
	mode               string
	admin, profileDir  string // with both, CPU profiles of Caddy under each site's load
	profileSec         int
}

// portal measures Caddy's forward_auth asking totp_auth's verify against
// the same forward_auth asking an endpoint that only answers 200, in
// alternating segments of one run, with the server's CPU per request.
func portal(args []string) error {
	var c portalConfig
	fs := flag.NewFlagSet("portal", flag.ExitOnError)
	fs.StringVar(&c.portal, "portal", "", "address of the portal (totp_auth with portal), where the bench user signs in")
	fs.StringVar(&c.verify, "verify", "", "address of the site whose forward_auth asks the portal's verify")
	fs.StringVar(&c.ok, "ok", "", "address of the site whose forward_auth asks an endpoint that answers 200")
	fs.StringVar(&c.appHost, "app-host", "app.bench.test", "Host of requests to the two sites (a name under the portal's domain)")
	fs.IntVar(&c.pid, "pid", 0, "process id of the Caddy under test")
	fs.IntVar(&c.upstreamPid, "upstream-pid", 0, "process id of the upstream, to account for its CPU")
	fs.IntVar(&c.clkTck, "clk-tck", 100, "clock ticks per second (getconf CLK_TCK)")
	fs.StringVar(&c.user, "user", "bench", "user name on the portal")
	fs.StringVar(&c.password, "password", "", "its password")
	fs.StringVar(&c.prefix, "prefix", "/.totp-auth", "totp_auth prefix")
	fs.StringVar(&c.cookie, "cookie", "totp_auth_session", "totp_auth session cookie name")
	fs.IntVar(&c.rounds, "rounds", 8, "rounds; each runs both sites once, in alternating order")
	fs.DurationVar(&c.loadDur, "load", 3*time.Second, "length of each segment")
	fs.DurationVar(&c.warmDur, "warmup", time.Second, "unreported warm-up per site")
	fs.IntVar(&c.conns, "conns", 64, "keep-alive connections per segment")
	fs.Int64Var(&c.maxRequests, "max-requests", 5_000_000, "cap on requests per segment")
	fs.StringVar(&c.mode, "mode", "full", "name of the mode, for the report")
	fs.StringVar(&c.admin, "admin", "", "Caddy admin address; with -profile-dir, take CPU profiles through it")
	fs.StringVar(&c.profileDir, "profile-dir", "", "write CPU profiles here (fa_ok.pprof, fa_verify.pprof)")
	fs.IntVar(&c.profileSec, "profile-seconds", 10, "length of each CPU profile")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, a := range []string{c.portal, c.verify, c.ok} {
		if err := checkLoopback(a); err != nil {
			return err
		}
	}
	if c.pid <= 0 || c.password == "" {
		return fmt.Errorf("-pid and -password are required")
	}
	if c.rounds < 1 || c.rounds > 50 || c.conns < 1 || c.conns > 1000 {
		return fmt.Errorf("rounds (1-50) or conns (1-1000) out of range")
	}
	cpu, err := newProcCPU(c.pid, c.upstreamPid, c.clkTck)
	if err != nil {
		return err
	}
	session, err := signIn("http://"+c.portal, c.prefix, c.cookie, c.user, c.password)
	if err != nil {
		return fmt.Errorf("sign in at the portal: %w", err)
	}
	cookie := "Cookie: " + c.cookie + "=" + session
	targets := []*target{
		{name: "fa_ok", addr: c.ok, cookieName: c.cookie},
		{name: "fa_verify", addr: c.verify, cookieName: c.cookie},
	}
	for _, t := range targets {
		_, port, _ := net.SplitHostPort(t.addr)
		t.host = c.appHost + ":" + port
		t.setAuth(cookie)
	}

	fmt.Printf("\n== portal mode: forward_auth to verify vs forward_auth to a plain 200, %s mode: %s, %d CPUs (%s), %s\n", c.mode,
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOARCH, runtime.Version())
	fmt.Printf("   %d rounds × 2 sites × %s @ %d conns, order alternated per round; server CPU from /proc/%d/stat\n",
		c.rounds, c.loadDur, c.conns, c.pid)
	for _, t := range targets {
		r, err := segment(t, c.conns, c.warmDur, c.maxRequests, cpu)
		if err != nil {
			return err
		}
		if r.requests == 0 || r.non200 > 0 || r.errors > 0 {
			return fmt.Errorf("warm-up on %s: %d requests, %d not 200, %d transport errors: the site is not serving the bench as configured",
				t.name, r.requests, r.non200, r.errors)
		}
	}
	load := make([][]result, c.rounds)
	for round := range c.rounds {
		fmt.Printf("round %d/%d\n", round+1, c.rounds)
		load[round] = make([]result, len(targets))
		for k := range targets {
			i := (k + round) % len(targets)
			r, err := segment(targets[i], c.conns, c.loadDur, c.maxRequests, cpu)
			if err != nil {
				return err
			}
			if r.non200 > 0 || r.errors > 0 {
				return fmt.Errorf("%s: %d answers not 200, %d transport errors under load", r.target, r.non200, r.errors)
			}
			load[round][i] = r
			printSegment(r)
		}
	}

	rps := func(x result) float64 { return x.rps() }
	cpuPer := func(x result) float64 { return x.cpuPerReq() }
	ratio := median(paired(load, 1, func(t, base result) float64 { return 100 * t.rps() / base.rps() }))
	added := median(paired(load, 1, func(t, base result) float64 { return t.cpuPerReq() - base.cpuPerReq() }))
	fmt.Printf("\n   %-10s %10s %14s\n", "site", "req/s", "CPU µs/req")
	for i, t := range targets {
		fmt.Printf("   %-10s %10.0f %14.1f\n", t.name, median(across(load, i, rps)), median(across(load, i, cpuPer)))
	}
	fmt.Printf("\n   forward_auth to verify keeps %.1f %% of the requests/s of forward_auth to a plain 200 (median of %d paired rounds; target ≥ %.0f %%): %s\n",
		ratio, c.rounds, minPortalPct, verdict(ratio >= minPortalPct))
	fmt.Printf("   server CPU added per request by verify: %.1f µs (median of paired rounds)\n", added)
	// Outside load moves throughput more than verify does: the same
	// figures over the rounds whose two segments saw about as much of it.
	mRatio, n := matched(load, 1, func(t, base result) float64 { return 100 * t.rps() / base.rps() })
	mAdded, _ := matched(load, 1, func(t, base result) float64 { return t.cpuPerReq() - base.cpuPerReq() })
	if n > 0 {
		fmt.Printf("   over the %d rounds whose segments saw outside load within %.2f cores of each other: %.1f %% of the requests/s, %+.1f µs CPU per request\n",
			n, matchedOthers, mRatio, mAdded)
	} else {
		fmt.Printf("   no round saw outside load within %.2f cores in both segments: the machine was too busy to cross-check\n", matchedOthers)
	}
	if c.admin != "" && c.profileDir != "" {
		if err := checkLoopback(c.admin); err != nil {
			return err
		}
		prof := profiling{admin: c.admin, dir: c.profileDir, secs: c.profileSec, conns: c.conns, maxRequests: c.maxRequests}
		for _, t := range targets {
			if err := prof.underLoad(t, cpu); err != nil {
				return err
			}
		}
	}
	for _, t := range targets {
		if n := t.refreshes.Load(); n > 0 {
			return fmt.Errorf("%s: %d answers set the session cookie; a verify answer must never", t.name, n)
		}
	}
	return nil
}
