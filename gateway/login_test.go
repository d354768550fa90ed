package gateway_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
	"golang.org/x/crypto/bcrypt"
)

// The password step: an unknown name costs what a known one does (SPEC §4
// rule 24).

func TestEnumeration_UnknownUserGetsTheSameAnswerAndWork(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), 8)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *gateway.Config) { c.Users = map[string][]byte{"alice": hash} })
	c := e.client()
	known := c.login("alice", "wrong")
	unknown := c.login("mallory", "wrong")
	if known.StatusCode != unknown.StatusCode || known.Body != unknown.Body {
		t.Fatalf("answers differ: %d %q vs %d %q", known.StatusCode, known.Body, unknown.StatusCode, unknown.Body)
	}
	// The quickest of several tries is what the work costs, whatever else
	// the machine is doing; known and unknown names take turns, so a burst
	// of load elsewhere slows both alike.
	e2 := newEnv(t, func(c *gateway.Config) { c.Users = map[string][]byte{"alice": hash}; c.MaxFailures = 100 })
	c = e2.client()
	timeOnce := func(user string, i int) time.Duration {
		start := time.Now()
		c.login(user, "wrong"+strconv.Itoa(i))
		return time.Since(start)
	}
	timeOnce("nobody", -1) // warm the decoy
	k, u := time.Hour, time.Hour
	for i := 0; i < 8; i++ {
		k = min(k, timeOnce("alice", i))
		u = min(u, timeOnce("nobody", i))
	}
	if u < k/2 || u > k*2 {
		t.Fatalf("unknown user took %s, known %s: not the same work", u, k)
	}
}
