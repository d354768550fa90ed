package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Every user can be signed out (SPEC §4 rules 18 and 19), against a real
// Caddy: removing a `user` line, and the operator's commands.

func TestConfigUser_RemovedLineEndsSessionsForGoodEvenWhenAddedBack(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	with := c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"kim", "lou"}), "respond ok"))
	without := c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"lou"}), "respond ok"))
	c.start(with, port)
	s := newClient(t, port)
	en := enroll(t, s, "kim")
	stolen := s.copyCookies()
	l := newClient(t, port)
	enroll(t, l, "lou")

	if status, body, _ := c.reload(without); status != http.StatusOK {
		t.Fatalf("reload without kim's line: %d %s", status, body)
	}
	waitSignedOut(t, stolen, "kim")
	// The line comes back: the old cookie does not.
	if status, body, _ := c.reload(with); status != http.StatusOK {
		t.Fatalf("reload with kim's line again: %d %s", status, body)
	}
	time.Sleep(300 * time.Millisecond)
	if user, status := whoami(t, stolen); status != http.StatusUnauthorized {
		t.Fatalf("kim's cookie from before the line was removed: whoami %q %d, want 401", user, status)
	}
	if user, _ := whoami(t, l); user != "lou" {
		t.Fatalf("lou, whose line stayed, was signed out too")
	}

	// Removed while Caddy is stopped, added back with a reload before any
	// request: the cookie stays dead as well.
	s2 := newClient(t, port)
	r := login(s2, "kim", testPassword)
	expect(t, "kim signs in again", r, http.StatusOK)
	c.stop()
	c.start(without, port)
	time.Sleep(300 * time.Millisecond)
	if status, body, _ := c.reload(with); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	time.Sleep(300 * time.Millisecond)
	at := time.Now()
	if totpStep(at) == totpStep(en.codeTime) {
		at = at.Add(30 * time.Second) // the enrollment used this step up
	}
	code := totp(t, en.secret, at)
	if r := s2.api("POST", "2fa", map[string]string{"code": code}); r.status != http.StatusUnauthorized {
		t.Fatalf("kim's pending sign-in from before a stop without the line: %d %s, want 401", r.status, r.body)
	}
	// Signing in afresh works.
	fresh := newClient(t, port)
	expect(t, "kim signs in afresh", login(fresh, "kim", testPassword), http.StatusOK)
	expect(t, "kim's code", fresh.api("POST", "2fa", map[string]string{"code": code}), http.StatusOK)
}

// waitSignedOut waits until c's session of user no longer passes; the
// sign-out happens once the new configuration is in force.
func waitSignedOut(t *testing.T, c *client, user string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		u, status := whoami(t, c)
		if status == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still signed in (whoami %q %d) after the line was removed", user, u, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOperations_SignOutResetAndUnlockWorkForCaddyfileUsers(t *testing.T) {
	t.Parallel()
	for _, mode := range operatorModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			c := newCaddy(t)
			port := freePort(t)
			cfg := c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"max"}, "max_failures 2"), "respond ok"))
			c.start(cfg, port)
			op := &operator{t: t, c: c, cfg: cfg, port: port, running: mode.running, flags: []string{"--config", c.path("Caddyfile")}}

			s := newClient(t, port)
			en := enroll(t, s, "max")
			pending := newClient(t, port)
			expect(t, "pending sign-in", login(pending, "max", testPassword), http.StatusOK)
			expectOutput(t, "user signout", op.must("", "user", "signout", "max"), "Signed max out everywhere")
			if _, status := whoami(t, s); status != http.StatusUnauthorized {
				t.Fatalf("max's session after signout: %d, want 401", status)
			}
			r := pending.api("POST", "2fa", map[string]string{"code": totp(t, en.secret, en.codeTime.Add(30*time.Second))})
			if r.status != http.StatusUnauthorized {
				t.Fatalf("max's pending sign-in after signout: %d %s", r.status, r.body)
			}

			// Locked by wrong passwords, then unlocked by the operator.
			for range 2 {
				login(newClient(t, port), "max", "wrong")
			}
			if r := login(newClient(t, port), "max", testPassword); r.status != http.StatusTooManyRequests {
				t.Fatalf("max after two failures: %d, want 429", r.status)
			}
			expectOutput(t, "user unlock", op.must("", "user", "unlock", "max"), "Unlocked max")
			// Reset: the next sign-in enrolls again.
			expectOutput(t, "user reset-2fa", op.must("", "user", "reset-2fa", "max"), "Reset the 2FA of max")
			if status, got := loginStatus(t, port, "max", testPassword); status != http.StatusOK || got != "enroll_required" {
				t.Fatalf("max after reset-2fa: %d %q, want enroll_required", status, got)
			}
			if out, _ := op.run("", "user", "signout", "nobody"); !strings.Contains(out, "no user nobody") {
				t.Errorf("signout of no user: %s", out)
			}
		})
	}
}

func TestPending_PasswdEndsPendingSignIns(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	cfg := c.caddyfile("", site(port, c.totpAuth("totp.db", nil), "respond ok"))
	c.start(cfg, port)
	out, err := c.cli(testPassword+"\n", nil, "user", "add", "nia", "--cost", "4", "--db", c.path("totp.db"))
	if err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	attacker := newClient(t, port)
	r := login(attacker, "nia", testPassword)
	if got := r.json(t)["status"]; got != "enroll_required" {
		t.Fatalf("login: %v", got)
	}
	out, err = c.cli("another password 123\n", nil, "user", "passwd", "nia", "--cost", "4", "--db", c.path("totp.db"))
	if err != nil {
		t.Fatalf("user passwd: %v\n%s", err, out)
	}
	if r := attacker.api("GET", "setup", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("pending enrollment from before passwd shows a secret: %d %s", r.status, r.body)
	}
}
