package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
)

const (
	uaFirefoxLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	uaSafariIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	uaChromeWin    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)

// browserAs is a client that sends ua.
func (e *env) browserAs(ua string) *client {
	c := e.client()
	c.ua = ua
	return c
}

// sessions returns the client's GET sessions rows, by device.
func (c *client) sessions() map[string]map[string]any {
	c.e.t.Helper()
	r := c.getJSON("/.totp-auth/sessions")
	if r.StatusCode != http.StatusOK {
		c.e.t.Fatalf("GET sessions: %d %s", r.StatusCode, r.Body)
	}
	out := map[string]map[string]any{}
	for _, v := range r.JSON["sessions"].([]any) {
		row := v.(map[string]any)
		out[row["device"].(string)] = row
	}
	return out
}

func TestSessions_ListShowsEachSessionInWordsAndWhichIsThisOne(t *testing.T) {
	e := newEnv(t)
	laptop, phone := e.browserAs(uaFirefoxLinux), e.browserAs(uaSafariIPhone)
	secret, _ := laptop.enroll("alice")
	phone.signIn("alice", secret)

	rows := laptop.sessions()
	if len(rows) != 2 {
		t.Fatalf("sessions = %v, want the laptop's and the phone's", rows)
	}
	l, p := rows["Firefox on Linux"], rows["Safari on iPhone"]
	if l == nil || p == nil {
		t.Fatalf("devices = %v, want Firefox on Linux and Safari on iPhone", rows)
	}
	if l["current"] != true || p["current"] != false {
		t.Errorf("current: laptop %v, phone %v; want true, false", l["current"], p["current"])
	}
	if l["factor"] != "totp" || p["factor"] != "totp" || l["level"] != float64(2) || l["ip"] != "127.0.0.1" {
		t.Errorf("laptop row %v, phone row %v: want factor totp, level 2, ip 127.0.0.1", l, p)
	}
	for _, row := range rows {
		if _, err := time.Parse(time.RFC3339, row["signed_in"].(string)); err != nil {
			t.Errorf("signed_in %v is not RFC 3339", row["signed_in"])
		}
		id := row["id"].(string)
		for _, c := range []*client{laptop, phone} {
			if ck := c.cookie("totp_auth_session"); ck == nil || strings.Contains(ck.Value, id) {
				t.Errorf("session id %q is (part of) a cookie value", id)
			}
		}
	}
	if strings.Contains(toString(rows), "Mozilla") {
		t.Errorf("the raw User-Agent is shown: %v", rows)
	}
}

func TestSessions_EndingOneRefusesItAtOnceAndKeepsTheOthers(t *testing.T) {
	e := newEnv(t)
	laptop, phone := e.browserAs(uaFirefoxLinux), e.browserAs(uaSafariIPhone)
	secret, _ := laptop.enroll("alice")
	phone.signIn("alice", secret)
	id := laptop.sessions()["Safari on iPhone"]["id"].(string)

	r := laptop.postJSON("/.totp-auth/sessions/end", map[string]string{"id": id})
	if r.StatusCode != http.StatusOK || r.JSON["status"] != "ok" {
		t.Fatalf("end: %d %s", r.StatusCode, r.Body)
	}
	if phone.signedIn() {
		t.Error("the ended session still passes the gate")
	}
	if !laptop.signedIn() {
		t.Error("the session that ended the other one was ended too")
	}
	if rows := laptop.sessions(); len(rows) != 1 || rows["Firefox on Linux"] == nil {
		t.Errorf("sessions after ending the phone's = %v", rows)
	}
	if r := laptop.postJSON("/.totp-auth/sessions/end", map[string]string{"id": id}); r.StatusCode != http.StatusNotFound {
		t.Errorf("ending it again: %d, want 404", r.StatusCode)
	}
}

func TestSessions_AnotherUsersOrAnUnknownIDIs404(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.browserAs(uaFirefoxLinux), e.browserAs(uaChromeWin)
	alice.enroll("alice")
	bob.enroll("bob")
	bobsID := bob.sessions()["Chrome on Windows"]["id"].(string)

	for _, id := range []string{bobsID, "0000000000000001", "not-an-id", ""} {
		if r := alice.postJSON("/.totp-auth/sessions/end", map[string]string{"id": id}); r.StatusCode != http.StatusNotFound || r.JSON["error"] != "not_found" {
			t.Errorf("alice ends %q: %d %s, want 404 not_found", id, r.StatusCode, r.Body)
		}
	}
	if !bob.signedIn() {
		t.Error("bob's session ended by alice's request")
	}
}

func TestSessions_SignedOutClientGets401(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	if r := c.getJSON("/.totp-auth/sessions"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET sessions: %d, want 401", r.StatusCode)
	}
	for _, p := range []string{"sessions/end", "sessions/end-others", "devices/forget"} {
		if r := c.postJSON("/.totp-auth/"+p, map[string]string{"id": "0000000000000001"}); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s: %d, want 401", p, r.StatusCode)
		}
	}
}

func TestSessions_EndOthersKeepsThisSessionAndRememberedDevices(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.RememberDevice = 30 * 24 * time.Hour })
	laptop, phone, work := e.browserAs(uaFirefoxLinux), e.browserAs(uaSafariIPhone), e.browserAs(uaChromeWin)
	secret, _ := laptop.enroll("alice")
	phone.signInRemembered("alice", secret)
	work.signIn("alice", secret)

	r := laptop.postJSON("/.totp-auth/sessions/end-others", nil)
	if r.StatusCode != http.StatusOK || r.JSON["status"] != "ok" || r.JSON["ended"] != float64(2) {
		t.Fatalf("end-others: %d %s, want ok and 2 ended", r.StatusCode, r.Body)
	}
	if phone.signedIn() || work.signedIn() {
		t.Error("another session still passes the gate")
	}
	if !laptop.signedIn() {
		t.Error("this session was ended too")
	}
	// The phone is still remembered: the password alone signs it in.
	if r := phone.loginLater("alice"); r.JSON["status"] != "ok" {
		t.Errorf("remembered phone after end-others: %s, want ok", r.Body)
	}
}

func TestSessions_EndingThisSessionSignsItOut(t *testing.T) {
	e := newEnv(t)
	laptop := e.browserAs(uaFirefoxLinux)
	laptop.enroll("alice")
	id := laptop.sessions()["Firefox on Linux"]["id"].(string)
	if r := laptop.postJSON("/.totp-auth/sessions/end", map[string]string{"id": id}); r.StatusCode != http.StatusOK {
		t.Fatalf("end this session: %d %s", r.StatusCode, r.Body)
	}
	if laptop.signedIn() {
		t.Error("the session still passes the gate")
	}
}

func TestSessions_AccountPageListsThemWithSignOutButtons(t *testing.T) {
	e := newEnv(t)
	laptop, phone := e.browserAs(uaFirefoxLinux), e.browserAs(uaSafariIPhone)
	secret, _ := laptop.enroll("alice")
	phone.signIn("alice", secret)
	page := laptop.getHTML("/.totp-auth/account").Body
	for _, want := range []string{"Firefox on Linux", "This device", "Safari on iPhone", `action="/.totp-auth/sessions/end"`, "Sign out everywhere else"} {
		if !strings.Contains(page, want) {
			t.Errorf("account page lacks %q", want)
		}
	}
	// The form on the page ends the phone's session, as a browser posts it.
	id := phone.sessions()["Safari on iPhone"]["id"].(string)
	r := laptop.postForm("/.totp-auth/account", "/.totp-auth/sessions/end", url.Values{"id": {id}, "form_token": {formValue(t, page, "form_token")}})
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/.totp-auth/account") {
		t.Fatalf("form post: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if phone.signedIn() {
		t.Error("the phone's session survived the page's Sign out")
	}
}

func TestSessions_LogoutAndLogoutAllLeaveNoEntry(t *testing.T) {
	e := newEnv(t)
	laptop, phone := e.browserAs(uaFirefoxLinux), e.browserAs(uaSafariIPhone)
	secret, _ := laptop.enroll("alice")
	phone.signIn("alice", secret)
	phone.postJSON("/.totp-auth/logout", nil)
	if rows := laptop.sessions(); len(rows) != 1 {
		t.Errorf("after the phone's logout the list is %v", rows)
	}
	phone.signIn("alice", secret)
	laptop.postJSON("/.totp-auth/logout-all", nil)
	acct, _ := e.store.Account("alice")
	if len(acct.Sessions) != 0 {
		t.Errorf("after logout-all the registry holds %v", acct.Sessions)
	}
}

func TestSessions_ExpiredSessionsLeaveTheListAndArePruned(t *testing.T) {
	e := newEnv(t)
	laptop, phone := e.browserAs(uaFirefoxLinux), e.browserAs(uaSafariIPhone)
	secret, _ := laptop.enroll("alice")
	e.clock.Advance(gateway.DefaultSessionTTL - 30*time.Minute)
	phone.signIn("alice", secret)
	e.clock.Advance(30 * time.Minute)
	if rows := phone.sessions(); len(rows) != 1 || rows["Safari on iPhone"] == nil {
		t.Errorf("sessions once the laptop's expired = %v", rows)
	}
	n, err := account.PruneRegistries(e.store, e.clock.Now())
	if err != nil || n != 1 {
		t.Fatalf("PruneRegistries = %d, %v; want 1", n, err)
	}
	acct, _ := e.store.Account("alice")
	if len(acct.Sessions) != 1 {
		t.Errorf("registry after pruning = %v, want the phone's alone", acct.Sessions)
	}
}

func TestLastSeen_WrittenAtMostOncePerFiveMinutes(t *testing.T) {
	e := newEnv(t)
	c := e.browserAs(uaFirefoxLinux)
	c.enroll("alice")
	signedIn := e.clock.Now()
	lastSeen := func() time.Time {
		e.gw.WaitLastSeen()
		acct, _ := e.store.Account("alice")
		return acct.Sessions[0].LastSeen
	}
	e.clock.Advance(4 * time.Minute)
	c.signedIn()
	if got := lastSeen(); !got.Equal(signedIn) {
		t.Errorf("last seen after 4 minutes = %v, want %v (no write yet)", got, signedIn)
	}
	e.clock.Advance(time.Minute)
	c.signedIn()
	want := e.clock.Now()
	if got := lastSeen(); !got.Equal(want) {
		t.Errorf("last seen after 5 minutes = %v, want %v", got, want)
	}
	e.clock.Advance(time.Minute)
	c.signedIn()
	if got := lastSeen(); !got.Equal(want) {
		t.Errorf("last seen a minute after a write = %v, want %v", got, want)
	}
}

// slowStore holds every UpdateAccount until release is closed.
type slowStore struct {
	account.Store
	release chan struct{}
	once    sync.Once
	held    chan struct{}
}

func (s *slowStore) UpdateAccount(user string, fn func(*account.Account) error) error {
	if s.release != nil {
		s.once.Do(func() { close(s.held) })
		<-s.release
	}
	return s.Store.UpdateAccount(user, fn)
}

func TestLastSeen_ASignedInRequestDoesNotWaitForTheWrite(t *testing.T) {
	var slow *slowStore
	e := newEnv(t, func(c *gateway.Config) {
		slow = &slowStore{Store: c.Store, held: make(chan struct{})}
		c.Store = slow
	})
	c := e.browserAs(uaFirefoxLinux)
	c.enroll("alice")
	slow.release = make(chan struct{})
	e.clock.Advance(gateway.LastSeenEvery)
	done := make(chan bool)
	go func() { done <- c.signedIn() }()
	select {
	case ok := <-done:
		if !ok {
			t.Error("the signed-in request was refused")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the signed-in request waited for the last-seen write")
	}
	select {
	case <-slow.held:
	case <-time.After(5 * time.Second):
		t.Error("no last-seen write was started at all")
	}
	close(slow.release)
	e.gw.WaitLastSeen()
}
