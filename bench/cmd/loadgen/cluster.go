package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// hash prints a bcrypt hash of -password at the lowest cost, for the users
// of the cluster measurements, whose sign-ins are not what is measured.
func hash(args []string) error {
	fs := flag.NewFlagSet("hash", flag.ExitOnError)
	password := fs.String("password", "", "the password")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(*password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	fmt.Println(string(h))
	return nil
}

// cluster measures two instances on one PostgreSQL database (SPEC §6,
// §13): how many failed attempts per second they record together, and how
// long a logout on one takes to reach the other.
func cluster(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ExitOnError)
	attackA := fs.String("attack-a", "", "host:port of instance A's site for failed attempts (a user with TOTP, no lockout)")
	attackB := fs.String("attack-b", "", "the same site on instance B")
	walkA := fs.String("walk-a", "", "host:port of instance A's site for logouts (require_2fa false)")
	walkB := fs.String("walk-b", "", "the same site on instance B")
	user := fs.String("user", "", "the users of the attack site are <user>0 ... <user><conns-1>: enrolled in TOTP by this command")
	walker := fs.String("walk-user", "", "the user of the logout site, without TOTP")
	password := fs.String("password", "", "the password of both users")
	prefix := fs.String("prefix", "/.totp-auth", "totp_auth's prefix")
	conns := fs.Int("conns", 32, "clients sending wrong codes, half to each instance")
	dur := fs.Duration("duration", 5*time.Second, "how long the wrong codes are sent")
	logouts := fs.Int("logouts", 200, "logouts measured")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, a := range []string{*attackA, *attackB, *walkA, *walkB} {
		if err := checkLoopback(a); err != nil {
			return err
		}
	}
	fmt.Printf("\n== two instances on one PostgreSQL\n")
	users := make([]string, *conns)
	for i := range users {
		users[i] = fmt.Sprintf("%s%d", *user, i)
		if _, err := signIn("http://"+*attackA, *prefix, "totp_auth_session", users[i], *password); err != nil {
			return fmt.Errorf("enroll %s: %w", users[i], err)
		}
	}
	for _, spread := range []bool{true, false} {
		rate, counts, err := failedAttempts("http://"+*attackA, "http://"+*attackB, *prefix, users, *password, spread, *dur)
		if err != nil {
			return fmt.Errorf("failed attempts: %w", err)
		}
		what := "one user and one client IP (every failure queues for the same two counters)"
		if spread {
			what = fmt.Sprintf("%d users from %d client IPs", *conns, *conns)
		}
		fmt.Printf("failed attempts recorded across both instances, %s: %.0f/s (%d clients, %s; answers %v)  %s (SPEC: >= 1,000/s)\n",
			what, rate, *conns, *dur, counts, verdict(rate >= 1000))
	}
	ds, err := logoutPropagation("http://"+*walkA, "http://"+*walkB, *prefix, *walker, *password, *logouts)
	if err != nil {
		return fmt.Errorf("logout propagation: %w", err)
	}
	slices.Sort(ds)
	at := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))] }
	fmt.Printf("logout on A until refused on B (%d logouts): p50 %s, p99 %s, max %s  %s (SPEC: within 1 s)\n",
		len(ds), at(0.5).Round(time.Microsecond), at(0.99).Round(time.Microsecond), ds[len(ds)-1].Round(time.Microsecond), verdict(ds[len(ds)-1] < time.Second))
	return nil
}

var benchHTTP = &http.Client{
	Timeout:       5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{MaxIdleConnsPerHost: 256},
}

// post sends a JSON body with cookies (and header name/value pairs) and
// returns the status and the cookies set.
func post(url string, body any, cookies map[string]string, header ...string) (int, []*http.Cookie, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	for n, v := range cookies {
		req.AddCookie(&http.Cookie{Name: n, Value: v})
	}
	resp, err := benchHTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Cookies(), nil
}

func get(url string, cookies map[string]string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	for n, v := range cookies {
		req.AddCookie(&http.Cookie{Name: n, Value: v})
	}
	resp, err := benchHTTP.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func cookieMap(cs []*http.Cookie) map[string]string {
	m := map[string]string{}
	for _, c := range cs {
		if c.Value != "" && c.MaxAge >= 0 {
			m[c.Name] = c.Value
		}
	}
	return m
}

// failedAttempts gives each client a pending sign-in (password right, code
// to come) on A or B in turn, and lets them all send wrong codes for dur.
// Every 401 is a failure the instances recorded in the shared counters.
// Spread, client i signs in as users[i] from its own client IP (sent in
// X-Forwarded-For, which the attack sites trust from 127.0.0.1);
// otherwise every client is users[0] from 127.0.0.1.
func failedAttempts(a, b, prefix string, users []string, password string, spread bool, dur time.Duration) (float64, map[int]int, error) {
	conns := len(users)
	pending := make([]map[string]string, conns)
	bases := make([]string, conns)
	headers := make([][]string, conns)
	for i := range pending {
		bases[i] = []string{a, b}[i%2]
		user := users[0]
		if spread {
			user = users[i]
			headers[i] = []string{"X-Forwarded-For", fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)}
		}
		status, cs, err := post(bases[i]+prefix+"/login", map[string]string{"username": user, "password": password}, nil, headers[i]...)
		if err != nil || status != http.StatusOK {
			return 0, nil, fmt.Errorf("password step: status %d, %v", status, err)
		}
		pending[i] = cookieMap(cs)
	}
	var mu sync.Mutex
	counts := map[int]int{}
	var failures atomic.Int64
	end := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := map[int]int{}
			for n := 0; n < 1_000_000 && time.Now().Before(end); n++ {
				status, _, err := post(bases[i]+prefix+"/2fa", map[string]string{"code": "000000"}, pending[i], headers[i]...)
				if err != nil {
					status = -1
				}
				local[status]++
				if status == http.StatusUnauthorized {
					failures.Add(1)
				}
			}
			mu.Lock()
			for s, n := range local {
				counts[s] += n
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(failures.Load()) / time.Since(start).Seconds(), counts, nil
}

// logoutPropagation signs in on A n times (password only), checks each
// session on B (so B holds its state in memory), logs out on A and polls
// B until it refuses the session, and returns how long each took from the
// logout's answer.
func logoutPropagation(a, b, prefix, user, password string, n int) ([]time.Duration, error) {
	var ds []time.Duration
	for range n {
		status, cs, err := post(a+prefix+"/login", map[string]string{"username": user, "password": password}, nil)
		if err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("sign in: status %d, %v", status, err)
		}
		session := cookieMap(cs)
		if s, err := get(b+"/", session); err != nil || s != http.StatusOK {
			return nil, fmt.Errorf("the session on B before the logout: status %d, %v", s, err)
		}
		if s, _, err := post(a+prefix+"/logout", map[string]string{}, session); err != nil || s != http.StatusOK {
			return nil, fmt.Errorf("logout on A: status %d, %v", s, err)
		}
		loggedOut := time.Now()
		for {
			s, err := get(b+"/", session)
			if err != nil {
				return nil, err
			}
			if s == http.StatusUnauthorized {
				break
			}
			if s != http.StatusOK {
				return nil, fmt.Errorf("the session on B after the logout: status %d", s)
			}
			if time.Since(loggedOut) > 5*time.Second {
				return nil, fmt.Errorf("B still lets the session through 5 s after the logout")
			}
		}
		ds = append(ds, time.Since(loggedOut))
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("no logouts measured")
	}
	return ds, nil
}
