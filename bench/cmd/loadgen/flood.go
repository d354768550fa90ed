package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// floodStats counts the flood's answers by status.
type floodStats struct {
	mu       sync.Mutex
	status   map[int]int64
	errors   int64 // dial, write or read failures before the flood's end
	cutOff   int64 // requests still unanswered when the flood ended
	requests int64
}

func (f *floodStats) add(status int) {
	f.mu.Lock()
	f.status[status]++
	f.requests++
	f.mu.Unlock()
}

// flood runs clients concurrent wrong-password logins against t's login
// endpoint until end or until maxReqs have been sent, each with a user name
// never used before, so that no per-user lock cuts it short and every one
// of them asks for a password check.
//
// With polite set, a client that is answered 503 or 429 waits out the
// Retry-After before its next request. A real attacker would not; it is
// there to tell how much of the flood's harm is the refusals' own churn.
func flood(t *target, prefix string, clients int, end time.Time, maxReqs int64, polite bool, st *floodStats) *sync.WaitGroup {
	var (
		wg     sync.WaitGroup
		seq    atomic.Int64
		budget atomic.Int64
	)
	budget.Store(maxReqs)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			floodClient(t, prefix, nil, end, polite, &seq, &budget, st)
		}()
	}
	return &wg
}

// floodClient is one flooding client. With from set, it connects from that
// local address (any 127.0.0.0/8 address is the loopback on Linux), so
// the server sees it as that client.
func floodClient(t *target, prefix string, from *net.TCPAddr, end time.Time, polite bool, seq, budget *atomic.Int64, st *floodStats) {
	dialer := net.Dialer{Timeout: 2 * time.Second}
	if from != nil {
		dialer.LocalAddr = from
	}
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
			c, err := dialer.Dial("tcp", t.addr)
			if err != nil {
				st.mu.Lock()
				st.errors++
				st.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
				continue
			}
			conn, br = c, bufio.NewReaderSize(c, 4<<10)
		}
		body := fmt.Sprintf(`{"username":"flood-%d","password":"wrong password"}`, seq.Add(1))
		req := fmt.Sprintf("POST %s/login HTTP/1.1\r\nHost: %s\r\nUser-Agent: totp-auth-bench-flood\r\n"+
			"Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			prefix, t.addr, len(body), body)
		// A queued password check may take seconds; the flood's end is the
		// only deadline, so nothing outlives it.
		_ = conn.SetDeadline(end)
		resp, err := sendRaw(conn, br, req)
		if err != nil {
			st.mu.Lock()
			if time.Now().Before(end) {
				st.errors++
			} else {
				st.cutOff++
			}
			st.mu.Unlock()
			conn.Close()
			conn = nil
			continue
		}
		st.add(resp.StatusCode)
		if resp.Close {
			conn.Close()
			conn = nil
		}
		if polite && (resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests) {
			secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || secs < 1 {
				secs = 1
			}
			time.Sleep(min(time.Duration(secs)*time.Second, time.Until(end)))
		}
	}
}

func sendRaw(conn net.Conn, br *bufio.Reader, req string) (*http.Response, error) {
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}
