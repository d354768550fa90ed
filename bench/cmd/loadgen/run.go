package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// config is what `loadgen run` is told by run.sh.
type config struct {
	plain, totp, basic string // 127.0.0.1:port of the three sites
	app                string // and of the app_passwords site, if any
	pid, upstreamPid   int
	clkTck             int
	user, password     string
	prefix, cookie     string

	rounds       int
	loadDur      time.Duration
	latDur       time.Duration
	warmDur      time.Duration
	conns        int
	maxRequests  int64
	floodClients int
	floodDur     time.Duration
	floodRamp    time.Duration
	floodPolite  bool
	fairSources  int
	fairTries    int
	fairDur      time.Duration
	fairGap      time.Duration
	mode         string

	admin      string // 127.0.0.1:port of Caddy's admin API, for profiles
	profileDir string
	profileSec int
}

func run(args []string) error {
	var c config
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&c.plain, "plain", "", "address of the plain reverse_proxy site")
	fs.StringVar(&c.totp, "totp", "", "address of the totp_auth + reverse_proxy site")
	fs.StringVar(&c.basic, "basic", "", "address of the basic_auth + reverse_proxy site")
	fs.StringVar(&c.app, "app", "", "address of a totp_auth site with app_passwords on the totp site's database (optional)")
	fs.IntVar(&c.pid, "pid", 0, "process id of the Caddy under test")
	fs.IntVar(&c.upstreamPid, "upstream-pid", 0, "process id of the upstream, to account for its CPU")
	fs.IntVar(&c.clkTck, "clk-tck", 100, "clock ticks per second (getconf CLK_TCK)")
	fs.StringVar(&c.user, "user", "bench", "user name on both auth sites")
	fs.StringVar(&c.password, "password", "", "its password")
	fs.StringVar(&c.prefix, "prefix", "/.totp-auth", "totp_auth prefix")
	fs.StringVar(&c.cookie, "cookie", "totp_auth_session", "totp_auth session cookie name")
	fs.IntVar(&c.rounds, "rounds", 8, "rounds; each runs every target once, in rotated order")
	fs.DurationVar(&c.loadDur, "load", 3*time.Second, "length of each many-connection segment")
	fs.DurationVar(&c.latDur, "latency", 2*time.Second, "length of each one-connection segment")
	fs.DurationVar(&c.warmDur, "warmup", time.Second, "unreported warm-up per target")
	fs.IntVar(&c.conns, "conns", 64, "keep-alive connections in the throughput segments")
	fs.Int64Var(&c.maxRequests, "max-requests", 5_000_000, "cap on requests per segment")
	fs.IntVar(&c.floodClients, "flood-clients", 200, "concurrent wrong-password clients")
	fs.DurationVar(&c.floodDur, "flood", 10*time.Second, "how long the signed-in client is measured with and without the flood")
	fs.DurationVar(&c.floodRamp, "flood-ramp", time.Second, "flood time before the signed-in client is measured")
	fs.BoolVar(&c.floodPolite, "flood-polite", false, "diagnostic: flood clients wait out Retry-After")
	fs.IntVar(&c.fairSources, "fair-sources", 20, "flood clients of the fair-share case, one per source address; 0 skips it")
	fs.IntVar(&c.fairTries, "fair-tries", 20, "sign-ins the real user tries during each fair-share flood")
	fs.DurationVar(&c.fairDur, "fair", 40*time.Second, "longest a fair-share flood lasts after its ramp")
	fs.DurationVar(&c.fairGap, "fair-gap", 200*time.Millisecond, "pause between the real user's tries")
	fs.StringVar(&c.mode, "mode", "full", "name of the mode, for the report")
	fs.StringVar(&c.admin, "admin", "", "Caddy admin address; with -profile-dir, take CPU profiles through it")
	fs.StringVar(&c.profileDir, "profile-dir", "", "write CPU profiles here")
	fs.IntVar(&c.profileSec, "profile-seconds", 10, "length of each CPU profile")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addrs := []string{c.plain, c.totp, c.basic}
	if c.app != "" {
		addrs = append(addrs, c.app)
	}
	for _, a := range addrs {
		if err := checkLoopback(a); err != nil {
			return err
		}
	}
	if c.pid <= 0 || c.password == "" {
		return fmt.Errorf("-pid and -password are required")
	}
	if c.rounds < 1 || c.rounds > 50 || c.conns < 1 || c.conns > 1000 || c.floodClients < 0 || c.floodClients > 2000 ||
		c.fairSources < 0 || c.fairSources > 200 || c.fairTries < 0 || c.fairTries > 1000 {
		return fmt.Errorf("rounds (1-50), conns (1-1000), flood-clients (0-2000), fair-sources (0-200) or fair-tries (0-1000) out of range")
	}
	cpu, err := newProcCPU(c.pid, c.upstreamPid, c.clkTck)
	if err != nil {
		return err
	}

	session, err := signIn("http://"+c.totp, c.prefix, c.cookie, c.user, c.password)
	if err != nil {
		return fmt.Errorf("sign in on the totp_auth site: %w", err)
	}
	basicAuth := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(c.user+":"+c.password))
	targets := []*target{
		newTarget("plain", c.plain, "", ""),
		newTarget("totp_auth", c.totp, "Cookie: "+c.cookie+"="+session, c.cookie),
		newTarget("basic_auth", c.basic, basicAuth, ""),
	}
	if c.app != "" {
		value, err := makeAppPassword("http://"+c.app, c.prefix, c.cookie, session, c.password)
		if err != nil {
			return fmt.Errorf("make an app password on the app_passwords site: %w", err)
		}
		targets = append(targets, newTarget("app_password", c.app,
			"Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte(c.user+":"+value)), ""))
	}

	fmt.Printf("== totp_auth bench, %s mode: %s, %d CPUs (%s), %s\n", c.mode,
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOARCH, runtime.Version())
	fmt.Printf("   %d rounds × %d targets × (%s @ %d conns + %s @ 1 conn) + %s interleaved, order rotated per round; server CPU from /proc/%d/stat\n",
		c.rounds, len(targets), c.loadDur, c.conns, c.latDur, c.latDur, c.pid)

	// Warm-up fills connection pools and basic_auth's hash cache (its first
	// request pays one full bcrypt), and proves each target answers 200.
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

	load := make([][]result, c.rounds) // [round][target index]
	lat := make([][]result, c.rounds)
	mix := make([][]result, c.rounds)
	for round := range c.rounds {
		fmt.Printf("round %d/%d\n", round+1, c.rounds)
		load[round] = make([]result, len(targets))
		lat[round] = make([]result, len(targets))
		for k := range targets {
			i := (k + round) % len(targets)
			r, err := segment(targets[i], c.conns, c.loadDur, c.maxRequests, cpu)
			if err != nil {
				return err
			}
			load[round][i] = r
			printSegment(r)
		}
		for k := range targets {
			i := (k + round) % len(targets)
			r, err := segment(targets[i], 1, c.latDur, c.maxRequests, cpu)
			if err != nil {
				return err
			}
			lat[round][i] = r
			printSegment(r)
		}
		mix[round] = interleaved(targets, c.latDur, c.maxRequests)
		fmt.Printf("  interleaved, 1 conn each, %s:", c.latDur)
		for _, r := range mix[round] {
			fmt.Printf("  %s p50 %.0f µs p99 %.0f µs (%d, non-200 %d, err %d)", r.target, r.pct(50), r.pct(99), r.requests, r.non200, r.errors)
		}
		fmt.Println()
	}
	rep := report{targets: targets, load: load, lat: lat, mix: mix}
	rep.print()

	if c.profileDir != "" && c.admin != "" {
		if err := checkLoopback(c.admin); err != nil {
			return err
		}
		prof := profiling{admin: c.admin, dir: c.profileDir, secs: c.profileSec, conns: c.conns, maxRequests: c.maxRequests}
		for _, t := range targets[:2] {
			if err := prof.underLoad(t, cpu); err != nil {
				return err
			}
		}
	}

	if c.floodClients > 0 {
		fr, err := runFlood(c, targets[1], cpu)
		if err != nil {
			return err
		}
		fr.print(c)
	}
	if c.fairSources > 0 && c.fairTries > 0 {
		rs, err := runFairness(c, targets[1])
		if err != nil {
			return err
		}
		printFairness(c, rs)
	}
	for _, t := range targets {
		if n := t.refreshes.Load(); n > 0 {
			fmt.Printf("(%s: %d answers carried a refreshed session cookie, from the idle-timeout slide about once a minute; the client switched to it)\n", t.name, n)
		}
	}
	return nil
}

func printSegment(r result) {
	fmt.Printf("  %-10s %2d conn %6.0f req/s  p50 %6.0f µs  p99 %6.0f µs  CPU %5.1f µs/req  non-200 %d  err %d  | cores: caddy %.2f upstream %.2f loadgen %.2f others %.2f\n",
		r.target, r.conns, r.rps(), r.pct(50), r.pct(99), r.cpuPerReq(), r.non200, r.errors,
		r.usage.server, r.usage.upstream, r.usage.self, r.usage.others)
}

// profiling is where and how long to take CPU profiles of Caddy, and the
// load to take them under.
type profiling struct {
	admin, dir  string // Caddy's admin address (127.0.0.1:port), the output directory
	secs        int
	conns       int
	maxRequests int64
}

// underLoad takes a CPU profile of Caddy through its admin API while t is
// under the many-connection load, into <dir>/<t.name>.pprof.
func (p profiling) underLoad(t *target, cpu *procCPU) error {
	done := make(chan result, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := segment(t, p.conns, time.Duration(p.secs)*time.Second+1500*time.Millisecond, p.maxRequests, cpu)
		if err != nil {
			errc <- err
			return
		}
		done <- r
	}()
	time.Sleep(500 * time.Millisecond)
	file := filepath.Join(p.dir, t.name+".pprof")
	if err := fetchProfile(p.admin, p.secs, file); err != nil {
		return err
	}
	select {
	case err := <-errc:
		return err
	case r := <-done:
		fmt.Printf("CPU profile of %s under %d conns for %ds: %s\n", t.name, p.conns, p.secs, file)
		printSegment(r)
	}
	return nil
}

func fetchProfile(admin string, secs int, file string) error {
	cl := &http.Client{Timeout: time.Duration(secs+15) * time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs))
	if err != nil {
		return fmt.Errorf("fetch CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("fetch CPU profile: status %d: %s", resp.StatusCode, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.LimitReader(resp.Body, 256<<20)); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	return f.Close()
}
