package gateway_test

import (
	"net/http"
	"testing"
	"time"
)

// Recovery belongs to the session that recovered (SPEC §4 rule 20).

func TestRecovery_SpendingABackupCodeEndsEveryOtherSessionAndPendingSignIn(t *testing.T) {
	e := newEnv(t)
	owner := e.client()
	secret, codes := owner.enroll("alice")
	thief := e.client()
	thief.signIn("alice", secret)
	pending := e.client()
	e.clock.Advance(30 * time.Second)
	if r := pending.login("alice", testPassword); r.JSON["status"] != "2fa_required" {
		t.Fatal(r.Body)
	}

	real := e.client()
	real.login("alice", testPassword)
	if r := real.postJSON("/.totp-auth/2fa", map[string]string{"code": codes[0]}); r.JSON["status"] != "regenerate_backup_codes" {
		t.Fatalf("backup code: %d %s", r.StatusCode, r.Body)
	}
	for name, c := range map[string]*client{"owner": owner, "thief": thief} {
		if r := c.postJSON("/.totp-auth/backup-codes", nil); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s's session from before the backup code made new codes: %d %s", name, r.StatusCode, r.Body)
		}
	}
	e.clock.Advance(30 * time.Second)
	if r := pending.postJSON("/.totp-auth/2fa", map[string]string{"code": e.code(secret, 0)}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("pending sign-in from before the backup code: %d %s", r.StatusCode, r.Body)
	}
	// The spending session makes the new set without a TOTP code.
	if r := real.postJSON("/.totp-auth/backup-codes", nil); r.StatusCode != 200 {
		t.Fatalf("the spending session: %d %s", r.StatusCode, r.Body)
	}
}

func TestRecovery_OnlyTheSpendingSessionSkipsTheTOTPCode(t *testing.T) {
	e := newEnv(t)
	owner := e.client()
	secret, codes := owner.enroll("alice")
	real := e.client()
	real.login("alice", testPassword)
	if r := real.postJSON("/.totp-auth/2fa", map[string]string{"code": codes[0]}); r.JSON["status"] != "regenerate_backup_codes" {
		t.Fatal(r.Body)
	}
	// Someone who has the password and a TOTP code signs in afterwards:
	// held at backup-codes like every session, but asked for a code.
	other := e.client()
	other.signIn("alice", secret)
	if r := other.getJSON("/.totp-auth/backup-codes"); r.JSON["regenerate_required"] != true || r.JSON["code_required"] != true {
		t.Fatalf("another session's view of recovery: %s", r.Body)
	}
	if r := other.postJSON("/.totp-auth/backup-codes", nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another session made codes without a TOTP code: %d %s", r.StatusCode, r.Body)
	}
	if r := real.getJSON("/.totp-auth/backup-codes"); r.JSON["code_required"] != false {
		t.Fatalf("the spending session's view: %s", r.Body)
	}
	// It locks nobody out: the spender still regenerates, the other one
	// can with a current code.
	e.clock.Advance(30 * time.Second)
	if r := other.postJSON("/.totp-auth/backup-codes", map[string]string{"code": e.code(secret, 0)}); r.StatusCode != 200 {
		t.Fatalf("another session with a TOTP code: %d %s", r.StatusCode, r.Body)
	}
}
