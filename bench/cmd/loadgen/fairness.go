package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// The fair-share case (issue 9, item 9): flood clients on a few source
// addresses keep the hashing queue full while a real user, from another
// address, tries to sign in. SPEC §6's bound stays as it is (one worker, a
// short queue, the excess refused at once); what is measured is who gets
// the places: how many of the user's sign-ins are answered, not refused.

// fairLayout is where the flood's source addresses are.
type fairLayout struct {
	name string
	addr func(i int) net.IP
}

var fairLayouts = []fairLayout{
	// One host or provider: 127.0.1.1, 127.0.1.2, ... (one /24).
	{"one /24", func(i int) net.IP { return net.IPv4(127, 0, 1, byte(1+i)) }},
	// As many networks as addresses: 127.10.0.1, 127.11.0.1, ...
	{"one /24 each", func(i int) net.IP { return net.IPv4(127, byte(10+i), 0, 1) }},
}

// fairResult is the real user's sign-ins during one layout's flood.
type fairResult struct {
	layout  string
	status  map[int]int
	errors  int
	latency []time.Duration
	flood   *floodStats
	elapsed time.Duration
}

// runFairness runs the fair-share case for each layout.
func runFairness(c config, t *target) ([]fairResult, error) {
	var out []fairResult
	for _, l := range fairLayouts {
		r, err := fairRun(c, t, l)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func fairRun(c config, t *target, l fairLayout) (fairResult, error) {
	res := fairResult{layout: l.name, status: map[int]int{}, flood: &floodStats{status: map[int]int64{}}}
	start := time.Now()
	end := start.Add(c.floodRamp + c.fairDur)
	var (
		wg     sync.WaitGroup
		seq    atomic.Int64
		budget atomic.Int64
	)
	budget.Store(c.maxRequests)
	for i := range c.fairSources {
		from := &net.TCPAddr{IP: l.addr(i)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			floodClient(t, c.prefix, from, end, false, &seq, &budget, res.flood)
		}()
	}
	time.Sleep(c.floodRamp)
	client := &http.Client{Timeout: 15 * time.Second}
	body, _ := json.Marshal(map[string]string{"username": c.user, "password": c.password})
	for try := 0; try < c.fairTries && time.Now().Before(end); try++ {
		req, err := http.NewRequest("POST", "http://"+t.addr+c.prefix+"/login", bytes.NewReader(body))
		if err != nil {
			return res, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Close = true // a fresh connection each time, as a person retrying would
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			res.errors++
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res.latency = append(res.latency, time.Since(t0))
		res.status[resp.StatusCode]++
		time.Sleep(c.fairGap)
	}
	// The flood ends at its deadline, never later.
	wg.Wait()
	res.elapsed = time.Since(start)
	return res, nil
}

func (r fairResult) print(c config) {
	tries := r.errors
	for _, n := range r.status {
		tries += n
	}
	sort.Slice(r.latency, func(i, j int) bool { return r.latency[i] < r.latency[j] })
	p := func(q float64) time.Duration {
		if len(r.latency) == 0 {
			return 0
		}
		return r.latency[min(len(r.latency)-1, int(q*float64(len(r.latency))))].Round(time.Millisecond)
	}
	f := r.flood
	fmt.Printf("  flood from %d addresses, %s: the real user's sign-ins: %d tries, 200 %d, 503 %d, 429 %d, other %d, errors %d; answered in p50 %s, max %s\n",
		c.fairSources, r.layout, tries, r.status[200], r.status[503], r.status[429],
		tries-r.errors-r.status[200]-r.status[503]-r.status[429], r.errors, p(0.5), p(1))
	fmt.Printf("    flood answers in %.1f s: 401 %d  503 %d  other %d  transport errors %d\n",
		r.elapsed.Seconds(), f.status[401], f.status[503], f.requests-f.status[401]-f.status[503], f.errors)
}

func printFairness(c config, rs []fairResult) {
	fmt.Printf("\nFair share: %d flood clients, one per source address, wrong passwords with a new name each; "+
		"meanwhile the real user signs in (correct password, from 127.0.0.1) up to %d times, %s apart\n",
		c.fairSources, c.fairTries, c.fairGap)
	for _, r := range rs {
		r.print(c)
	}
}
