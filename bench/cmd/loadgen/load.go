package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ioTimeout bounds any single request, so a stuck connection delays the end
// of a segment by at most this much.
const ioTimeout = 5 * time.Second

// target is one site of the Caddy under test. Its request is prebuilt
// bytes, written as-is on a keep-alive connection: a lean client leaves
// more of the two shared cores to the server being measured.
type target struct {
	name string
	addr string
	// host is the Host header; empty means addr.
	host string
	// auth is the header line that authenticates (Cookie or
	// Authorization), empty for plain reverse_proxy.
	auth string
	// cookieName, when set, is the session cookie: a Set-Cookie for it
	// (the gateway slides the idle timeout about once a minute) replaces
	// the one sent, as a browser would do.
	cookieName string
	req        atomic.Pointer[[]byte]
	refreshes  atomic.Int64
}

func newTarget(name, addr, auth, cookieName string) *target {
	t := &target{name: name, addr: addr, cookieName: cookieName}
	t.setAuth(auth)
	return t
}

func (t *target) setAuth(auth string) {
	t.auth = auth
	var b strings.Builder
	host := t.host
	if host == "" {
		host = t.addr
	}
	b.WriteString("GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: totp-auth-bench\r\nAccept: */*\r\n")
	if auth != "" {
		b.WriteString(auth + "\r\n")
	}
	b.WriteString("\r\n")
	req := []byte(b.String())
	t.req.Store(&req)
}

// noteResponse picks up a refreshed session cookie. Workers race to do it
// about once a minute; any of their copies is as good as another.
func (t *target) noteResponse(resp *http.Response) {
	if t.cookieName == "" || len(resp.Header["Set-Cookie"]) == 0 {
		return
	}
	for _, c := range resp.Cookies() {
		if c.Name == t.cookieName && c.Value != "" && c.MaxAge >= 0 {
			t.setAuth("Cookie: " + c.Name + "=" + c.Value)
			t.refreshes.Add(1)
		}
	}
}

// result is one segment's measurement.
type result struct {
	target   string
	conns    int
	requests int64
	non200   int64
	errors   int64 // transport errors: failed dials, reads, writes
	elapsed  time.Duration
	cpu      time.Duration // the server process's user+system CPU over the segment
	lat      []time.Duration
	// usage is where the machine's CPU went over the segment, to tell
	// interference from other work on the machine apart from the server.
	usage cpuUsage
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// cpuPerReq is the server's CPU time per request, in microseconds.
func (r result) cpuPerReq() float64 {
	if r.requests == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.requests)
}

// pct returns the p-th percentile latency (nearest rank), in microseconds.
func (r result) pct(p float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	i = min(max(i, 0), len(r.lat)-1)
	return float64(r.lat[i].Nanoseconds()) / 1e3
}

// workerStats are one connection's counts, merged after the segment.
type workerStats struct {
	requests, non200, errors int64
	lat                      []time.Duration
}

// segment hammers t with GET / on conns keep-alive connections for dur or
// until maxReqs requests, whichever comes first, and measures throughput,
// latency and the server's CPU time over exactly that interval.
func segment(t *target, conns int, dur time.Duration, maxReqs int64, cpu *procCPU) (result, error) {
	budget := new(atomic.Int64)
	budget.Store(maxReqs)
	stats := make([]workerStats, conns)
	var wg sync.WaitGroup
	m0, err := cpu.sample()
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	end := start.Add(dur)
	for i := range stats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hammer(t, end, budget, &stats[i])
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	m1, err := cpu.sample()
	if err != nil {
		return result{}, err
	}
	u := m1.since(m0, elapsed)
	r := result{target: t.name, conns: conns, elapsed: elapsed, cpu: m1.server - m0.server, usage: u}
	for _, s := range stats {
		r.requests += s.requests
		r.non200 += s.non200
		r.errors += s.errors
		r.lat = append(r.lat, s.lat...)
	}
	slices.Sort(r.lat)
	return r, nil
}

// hammer is one client connection: request after request, each answer
// read in full before the next is sent.
func hammer(t *target, end time.Time, budget *atomic.Int64, st *workerStats) {
	st.lat = make([]time.Duration, 0, 4096)
	var (
		conn net.Conn
		br   *bufio.Reader
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for time.Now().Before(end) && budget.Add(-1) >= 0 {
		if conn == nil {
			c, err := net.DialTimeout("tcp", t.addr, 2*time.Second)
			if err != nil {
				st.errors++
				time.Sleep(20 * time.Millisecond)
				continue
			}
			conn, br = c, bufio.NewReaderSize(c, 16<<10)
		}
		req := *t.req.Load()
		begin := time.Now()
		_ = conn.SetDeadline(begin.Add(ioTimeout))
		status, closed, err := roundTrip(conn, br, req, t)
		if err != nil {
			st.errors++
			conn.Close()
			conn = nil
			continue
		}
		st.lat = append(st.lat, time.Since(begin))
		st.requests++
		if status != http.StatusOK {
			st.non200++
		}
		if closed {
			conn.Close()
			conn = nil
		}
	}
}

// roundTrip writes req and reads the whole response, reporting its status
// and whether the server is closing the connection.
func roundTrip(conn net.Conn, br *bufio.Reader, req []byte, t *target) (status int, closed bool, err error) {
	if _, err := conn.Write(req); err != nil {
		return 0, false, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, false, err
	}
	if t != nil {
		t.noteResponse(resp)
	}
	return resp.StatusCode, resp.Close, nil
}

// interleaved measures unsaturated latency of all targets at once: one
// client, one keep-alive connection per target, one request at a time,
// target after target. Every target then sees the same moments of the
// machine's outside load, which sequential segments cannot promise. It
// returns one result per target, without CPU figures (they cannot be split).
func interleaved(ts []*target, dur time.Duration, maxReqs int64) []result {
	type side struct {
		conn net.Conn
		br   *bufio.Reader
		st   workerStats
	}
	sides := make([]side, len(ts))
	defer func() {
		for _, s := range sides {
			if s.conn != nil {
				s.conn.Close()
			}
		}
	}()
	start := time.Now()
	end := start.Add(dur)
	for n := int64(0); n < maxReqs && time.Now().Before(end); n++ {
		i := int(n % int64(len(ts)))
		s, t := &sides[i], ts[i]
		if s.conn == nil {
			c, err := net.DialTimeout("tcp", t.addr, 2*time.Second)
			if err != nil {
				s.st.errors++
				time.Sleep(20 * time.Millisecond)
				continue
			}
			s.conn, s.br = c, bufio.NewReaderSize(c, 16<<10)
		}
		begin := time.Now()
		_ = s.conn.SetDeadline(begin.Add(ioTimeout))
		status, closed, err := roundTrip(s.conn, s.br, *t.req.Load(), t)
		if err != nil || closed {
			s.conn.Close()
			s.conn = nil
		}
		if err != nil {
			s.st.errors++
			continue
		}
		s.st.lat = append(s.st.lat, time.Since(begin))
		s.st.requests++
		if status != http.StatusOK {
			s.st.non200++
		}
	}
	elapsed := time.Since(start)
	out := make([]result, len(ts))
	for i, s := range sides {
		slices.Sort(s.st.lat)
		out[i] = result{target: ts[i].name, conns: 1, requests: s.st.requests, non200: s.st.non200,
			errors: s.st.errors, elapsed: elapsed, lat: s.st.lat}
	}
	return out
}
