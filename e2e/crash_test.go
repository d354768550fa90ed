package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/storage"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// The crash test's load: how many users; how many goroutines enroll them
// (enrollment hashes ten backup codes, one at a time for the whole server,
// so more enrollers would only queue) and how many sign the enrolled ones
// in; after how many confirmed enrollments, refused reuses of a code and
// sign-ins Caddy is killed (well before all users are enrolled, so
// enrollments are still under way); how many reused codes a user sends
// before its sign-in; and how many reused codes a user is refused at most,
// which stays below the max_failures the test configures.
const (
	crashUsers       = 20
	crashEnrollers   = 2
	crashSigners     = 2
	crashKillAfter   = 6
	crashKillReuses  = 10
	crashKillSignIns = 2
	crashReusesFirst = 2
	crashMaxRefusals = 200
)

// crashUser is one user of the crash test and what the test sent for it.
// One goroutine at a time owns it: an enroller until the enrollment is
// confirmed, then a signer.
type crashUser struct {
	name, password string
	http           *http.Client // its own cookies: pending cookie, session

	secret     string // from GET setup
	setupSent  bool   // a POST setup with a code went out
	confirmed  bool   // a POST setup was answered 200
	enrollStep int64  // the step whose code the answered POST setup carried
	maxStep    int64  // the latest step of any code sent; later ones are unused
	signedIn   bool   // a POST 2fa with enrollStep+1 was answered 200
	pending    bool   // holds a pending cookie for POST 2fa
	refusals   int    // POST 2fa refused a reused step
}

// crashRun is the shared state of the workers.
type crashRun struct {
	base      string
	killed    atomic.Bool  // set just before the SIGKILL
	inFlight  atomic.Int64 // requests sent and not yet answered in full
	confirmed atomic.Int64 // POST setup answered 200
	signIns   atomic.Int64 // POST 2fa answered 200
	reuses    atomic.Int64 // POST 2fa refused a reused step

	mu       sync.Mutex
	problems []string // unexpected answers while Caddy ran
}

// problem records an unexpected answer, unless Caddy is being killed, when
// any answer or none may come.
func (run *crashRun) problem(format string, args ...any) {
	if run.killed.Load() {
		return
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	run.problems = append(run.problems, fmt.Sprintf(format, args...))
}

// call sends one JSON API request for u. It returns the status even when
// the body could not be read: a status line alone proves the server
// finished the work behind it.
func (run *crashRun) call(u *crashUser, method, path string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, run.base+prefix+"/"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	run.inFlight.Add(1)
	defer run.inFlight.Add(-1)
	resp, err := u.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("answer is no JSON object: %q", raw)
	}
	return resp.StatusCode, m, nil
}

// enroll takes u one attempt further towards a confirmed enrollment and
// reports whether Caddy still answers.
func (run *crashRun) enroll(u *crashUser) bool {
	status, m, err := run.call(u, "POST", "login", map[string]string{"username": u.name, "password": u.password})
	switch {
	case err != nil:
		run.problem("%s: POST login: %v", u.name, err)
		return false
	case status == http.StatusServiceUnavailable:
		return true // hashing queue full: try again later
	case status != http.StatusOK || m["status"] != "enroll_required":
		run.problem("%s: POST login before enrollment: %d %v", u.name, status, m)
		return true
	}
	status, m, err = run.call(u, "GET", "setup", nil)
	if err != nil || status != http.StatusOK {
		run.problem("%s: GET setup: %d %v %v", u.name, status, m, err)
		return err == nil
	}
	secret, _ := m["secret"].(string)
	if u.secret != "" && secret != u.secret {
		run.problem("%s: GET setup changed the pending secret", u.name)
	}
	u.secret = secret
	// The previous step is within the default drift of one, so the next
	// two steps stay free for a sign-in now and one after the restart.
	step := totpStep(time.Now()) - 1
	code, err := oathtoolCode(secret, step)
	if err != nil {
		run.problem("%s: %v", u.name, err)
		return true
	}
	u.setupSent = true
	u.maxStep = max(u.maxStep, step)
	status, m, err = run.call(u, "POST", "setup", map[string]string{"code": code})
	if status == http.StatusOK {
		// Recorded before anything else: Caddy said it is enabled.
		u.confirmed, u.enrollStep = true, step
		run.confirmed.Add(1)
		return true
	}
	switch {
	case err != nil:
		run.problem("%s: POST setup: %v", u.name, err)
		return false
	case status == http.StatusServiceUnavailable:
	case status == http.StatusBadRequest && m["error"] == "invalid_code":
		// The clock crossed into a step that no longer accepts the code.
	default:
		run.problem("%s: POST setup: %d %v", u.name, status, m)
	}
	return true
}

// signIn sends one code for u on a pending cookie. The first few reuse
// the step its enrollment used up, and must be refused; then comes its one
// sign-in, with the next step, after which it signs out everywhere (which
// raises its session generation); after that, the sign-in's step is
// reused, and must be refused. A refused code writes the lockout counters
// without any password hashing, so these writes are what the database is
// busiest with.
func (run *crashRun) signIn(u *crashUser) bool {
	if u.signedIn && u.refusals >= crashMaxRefusals {
		return true
	}
	if !u.pending {
		status, m, err := run.call(u, "POST", "login", map[string]string{"username": u.name, "password": u.password})
		switch {
		case err != nil:
			run.problem("%s: POST login: %v", u.name, err)
			return false
		case status == http.StatusServiceUnavailable:
			return true // hashing queue full: try again later
		case status != http.StatusOK || m["status"] != "2fa_required":
			run.problem("%s: POST login after confirmed enrollment: %d %v, want 2fa_required", u.name, status, m)
			return true
		}
		u.pending = true
	}
	step := u.enrollStep + 1
	if !u.signedIn && u.refusals < crashReusesFirst {
		step = u.enrollStep
	}
	reuse := step == u.enrollStep || u.signedIn
	code, err := oathtoolCode(u.secret, step)
	if err != nil {
		run.problem("%s: %v", u.name, err)
		return true
	}
	u.maxStep = max(u.maxStep, step)
	status, m, err := run.call(u, "POST", "2fa", map[string]string{"code": code})
	switch {
	case err != nil:
		run.problem("%s: POST 2fa: %v", u.name, err)
		return false
	case status == http.StatusOK && reuse:
		run.problem("%s: POST 2fa accepted time step %d a second time", u.name, step)
		u.pending = false
	case status == http.StatusOK:
		u.signedIn, u.pending = true, false
		run.signIns.Add(1)
		if status, m, err := run.call(u, "POST", "logout-all", map[string]string{}); err != nil || status != http.StatusOK {
			run.problem("%s: POST logout-all: %d %v %v", u.name, status, m, err)
			return err == nil
		}
	case status == http.StatusUnauthorized && m["error"] == "invalid_code":
		if reuse { // else the clock crossed into a step that refuses it
			u.refusals++
			run.reuses.Add(1)
		}
	case status == http.StatusServiceUnavailable:
	default:
		run.problem("%s: POST 2fa: %d %v", u.name, status, m)
	}
	return true
}

// enrollAll enrolls users one by one and hands each confirmed one to the
// signers, until stop is closed or Caddy stops answering.
func (run *crashRun) enrollAll(users []*crashUser, confirmed chan<- *crashUser, stop <-chan struct{}) {
	for len(users) > 0 {
		select {
		case <-stop:
			return
		default:
		}
		u := users[0]
		if !run.enroll(u) {
			return
		}
		if u.confirmed {
			users = users[1:]
			confirmed <- u
		}
	}
}

// signInAll signs in the users it receives, until stop is closed or Caddy
// stops answering.
func (run *crashRun) signInAll(confirmed <-chan *crashUser, stop <-chan struct{}) {
	var users []*crashUser
	for i := 0; ; i++ {
		if len(users) == 0 {
			select {
			case <-stop:
				return
			case u := <-confirmed:
				users = append(users, u)
			}
		}
		select {
		case <-stop:
			return
		case u := <-confirmed:
			users = append(users, u)
		default:
		}
		// A user is seen through to its sign-in before the next one
		// starts; then they take turns reusing codes.
		u := users[i%len(users)]
		for _, v := range users {
			if !v.signedIn {
				u = v
				break
			}
		}
		if !run.signIn(u) {
			return
		}
	}
}

func TestCrash_KilledCaddyKeepsEveryConfirmedEnrollment(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)

	users := make([]*crashUser, crashUsers)
	var lines []string
	for i := range users {
		u := &crashUser{name: fmt.Sprintf("crash%02d", i), password: fmt.Sprintf("password of crash user %d", i)}
		hash, err := bcrypt.GenerateFromPassword([]byte(u.password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		u.http = &http.Client{Jar: jar, Timeout: 15 * time.Second}
		users[i] = u
		lines = append(lines, fmt.Sprintf("user %s %s", u.name, hash))
	}
	// Limits high enough that the reused codes of the load lock no one out.
	settings := append([]string{"max_failures 1000", "max_failures_per_ip 100000"}, lines...)
	cfg := c.caddyfile("", site(port, c.totpAuth("totp.db", nil, settings...), `respond "behind the gate"`))
	db := c.path("totp.db")
	c.start(cfg, port)

	run := &crashRun{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	stop := make(chan struct{})
	confirmed := make(chan *crashUser, len(users))
	var wg sync.WaitGroup
	for w := range crashEnrollers {
		var own []*crashUser
		for i := w; i < len(users); i += crashEnrollers {
			own = append(own, users[i])
		}
		wg.Go(func() { run.enrollAll(own, confirmed, stop) })
	}
	for range crashSigners {
		wg.Go(func() { run.signInAll(confirmed, stop) })
	}
	// Whatever happens below, the workers end before the test reads users.
	var once sync.Once
	endLoad := func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
		})
	}
	defer endLoad()

	deadline := time.Now().Add(90 * time.Second)
	ready := func() bool {
		return run.confirmed.Load() >= crashKillAfter && run.reuses.Load() >= crashKillReuses && run.signIns.Load() >= crashKillSignIns
	}
	for !ready() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !ready() {
		endLoad()
		t.Fatalf("in 90s only %d enrollments confirmed, %d reuses refused and %d sign-ins, want %d, %d and %d before the kill; problems: %v",
			run.confirmed.Load(), run.reuses.Load(), run.signIns.Load(), crashKillAfter, crashKillReuses, crashKillSignIns, run.problems)
	}
	// A random moment later, so that over many runs the kill lands in every
	// part of the work, and while requests are being answered, not between.
	time.Sleep(rand.N(300 * time.Millisecond))
	for wait := time.Now().Add(2 * time.Second); run.inFlight.Load() < 2 && time.Now().Before(wait); {
		time.Sleep(100 * time.Microsecond)
	}
	run.killed.Store(true)
	inFlight, confirmedAtKill := run.inFlight.Load(), run.confirmed.Load()
	if err := c.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown, no Close
		t.Fatal(err)
	}
	if !c.waitExit(10 * time.Second) {
		t.Fatal("caddy did not exit after SIGKILL")
	}
	endLoad()
	for _, p := range run.problems {
		t.Errorf("while caddy ran: %s", p)
	}
	t.Logf("killed caddy with %d requests in flight, after %d confirmed enrollments (%d in the end), %d sign-ins and %d refused reuses of a step",
		inFlight, confirmedAtKill, run.confirmed.Load(), run.signIns.Load(), run.reuses.Load())

	// The file as the kill left it.
	checkBolt(t, db)

	// A restart on the same file opens it, and every confirmed enrollment
	// signs in. An enrollment whose answer the kill cut off may be there or
	// not, but if it is, it is whole.
	c.start(cfg, port)
	var intact, unanswered int
	for _, u := range users {
		b := newClient(t, port)
		r := b.api("POST", "login", map[string]string{"username": u.name, "password": u.password})
		expect(t, u.name+": POST login after the restart", r, http.StatusOK)
		state := r.json(t)["status"]
		switch {
		case u.confirmed && state != "2fa_required":
			t.Errorf("%s: confirmed enrollment lost: POST login says %v, want 2fa_required", u.name, state)
			continue
		case !u.setupSent && state != "enroll_required":
			t.Errorf("%s: no code was ever sent to confirm it, yet POST login says %v, want enroll_required", u.name, state)
			continue
		case state == "enroll_required":
			continue
		case state != "2fa_required":
			t.Errorf("%s: POST login after the restart says %v", u.name, state)
			continue
		}
		if !u.confirmed {
			unanswered++
		}
		r = b.api("POST", "2fa", map[string]string{"code": totp(t, u.secret, unusedStepTime(u.maxStep))})
		if r.status != http.StatusOK {
			t.Errorf("%s: POST 2fa with a fresh code after the restart: %d %s (confirmed: %v)", u.name, r.status, r.body, u.confirmed)
			continue
		}
		if who, status := whoami(t, b); who != u.name {
			t.Errorf("%s: whoami after the restart: %q (status %d)", u.name, who, status)
			continue
		}
		intact++
	}
	t.Logf("after the restart %d enrollments sign in: %d confirmed, %d whose answer the kill cut off", intact, intact-unanswered, unanswered)

	// A clean stop leaves a file bbolt finds consistent, and the secrets
	// decrypt to exactly what the users enrolled with.
	c.stop()
	checkBolt(t, db)
	key, err := secrets.ParseKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := storage.Open(db, storage.Options{Keys: []secrets.Key{key}})
	if err != nil {
		t.Fatalf("open the database after the restart: %v", err)
	}
	defer s.Close()
	for _, u := range users {
		if !u.confirmed {
			continue
		}
		a, err := s.Account(u.name)
		if err != nil {
			t.Errorf("%s: %v", u.name, err)
		} else if a.TOTPSecret != u.secret {
			t.Errorf("%s: stored TOTP secret is not the one confirmed", u.name)
		}
	}
}

// checkBolt opens the bbolt file at path read-only and runs bbolt's own
// consistency check over it.
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s read-only: %v", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var problems []string
		for err := range tx.Check() {
			problems = append(problems, err.Error())
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s", strings.Join(problems, "; "))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("consistency check of %s: %v", path, err)
	}
}

// totpStep is the RFC 6238 time step (30 s) of at.
func totpStep(at time.Time) int64 { return at.Unix() / 30 }

// unusedStepTime returns a time whose code is later than step and within
// the default drift of one step of now, waiting if now is too early.
func unusedStepTime(step int64) time.Time {
	want := max(step+1, totpStep(time.Now()))
	for totpStep(time.Now()) < want-1 {
		time.Sleep(100 * time.Millisecond)
	}
	return time.Unix(want*30+15, 0)
}

// oathtoolCode returns oathtool's code for secret at the middle of step.
// Unlike totp it returns its error, so that load goroutines may call it.
func oathtoolCode(secret string, step int64) (string, error) {
	out, err := exec.Command("oathtool", "--totp", "-b", "-N", fmt.Sprintf("@%d", step*30+15), secret).Output()
	if err != nil {
		return "", fmt.Errorf("oathtool (install it: `make test` does): %v", err)
	}
	return strings.TrimSpace(string(out)), nil
}
