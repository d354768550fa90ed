package caddymodule

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/operator"
	"github.com/totp-auth/totp_auth/storage"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// testDatabase opens a database in a temporary folder as a site block
// with these `user` lines holds it.
func testDatabase(t *testing.T, configUsers ...string) *database {
	t.Helper()
	key, err := secrets.ParseKey(key64)
	if err != nil {
		t.Fatal(err)
	}
	d, err := openDatabaseFile(filepath.Join(t.TempDir(), "totp.db"), keySet{keys: []secrets.Key{key}}, time.Second, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.db.Close() })
	users := make(map[string]bool)
	for _, u := range configUsers {
		users[u] = true
	}
	if err := d.hold(new(TOTPAuth), holder{users: users, lockout: gateway.DefaultLockout}); err != nil {
		t.Fatal(err)
	}
	return d
}

// offlineDatabase opens a database in a temporary folder as a command
// that read no configuration file holds it.
func offlineDatabase(t *testing.T) *database {
	t.Helper()
	d := testDatabase(t)
	d.mu.Lock()
	d.handlers = make(map[*TOTPAuth]holder)
	d.mu.Unlock()
	d.holdForCommand(holder{noConfig: true})
	return d
}

func mustHash(t *testing.T, password string) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// enrollUser confirms a TOTP enrollment for user with 10 backup codes.
func enrollUser(t *testing.T, d *database, user string) {
	t.Helper()
	now := time.Now()
	e, err := account.EnrollmentFor(d.db, user, 0, now, func() (account.Enrollment, error) {
		return account.Enrollment{Secret: "JBSWY3DPEHPK3PXP", Expires: now.Add(time.Minute)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	codes := make([][]byte, 10)
	for i := range codes {
		codes[i] = mustHash(t, "code")
	}
	if err := account.ConfirmEnrollment(d.db, user, e.Secret, 1, codes, now); err != nil {
		t.Fatal(err)
	}
}

// lock makes key's counter reach its limit.
func lock(t *testing.T, d *database, key string, now time.Time) {
	t.Helper()
	limits := []account.Limit{{Key: key, Max: 1}}
	a, l, err := account.TakeAttempt(d.db, now, time.Hour, limits)
	if err != nil || l != nil {
		t.Fatalf("TakeAttempt: %v %v", l, err)
	}
	if _, err := account.FailAttempt(d.db, a, now, time.Hour); err != nil {
		t.Fatal(err)
	}
}

func findUser(l operator.Listing, name string) *operator.UserReport {
	for i := range l.Users {
		if l.Users[i].Name == name {
			return &l.Users[i]
		}
	}
	return nil
}

func mustList(t *testing.T, d *database, now time.Time) operator.Listing {
	t.Helper()
	l, err := d.users().List(now)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// refusal returns the HTTP status of an operation's refusal, or fails.
func refusal(t *testing.T, err error) int {
	t.Helper()
	var refused *operator.Refusal
	if !errors.As(err, &refused) {
		t.Fatalf("err = %v, want a refusal", err)
	}
	return refused.Status
}

func generation(t *testing.T, d *database, user string) uint64 {
	t.Helper()
	st, err := d.db.SessionState(user)
	if err != nil {
		t.Fatal(err)
	}
	return st.Generation
}

func TestOperations_AddedUserIsListedAndHoldsSessions(t *testing.T) {
	d := testDatabase(t, "carol")
	r, err := d.users().Add(" Bob ", mustHash(t, "pw"))
	if err != nil || !strings.Contains(r.Message, "Added bob") {
		t.Fatalf("addUser = %+v, %v", r, err)
	}
	l := mustList(t, d, time.Now())
	if !l.SourcesKnown || len(l.Users) != 2 {
		t.Fatalf("listing %+v: want bob and carol with known sources", l)
	}
	if u := findUser(l, "bob"); u == nil || u.Source != operator.SourceDatabase || u.TwoFactor || u.LockedUntil != nil {
		t.Errorf("bob = %+v, want a database user without 2FA, not locked", u)
	}
	if u := findUser(l, "carol"); u == nil || u.Source != operator.SourceConfig {
		t.Errorf("carol = %+v, want source Caddyfile", u)
	}
	st, err := d.db.SessionState("bob")
	if err != nil || !st.PasswordSet {
		t.Errorf("SessionState(bob) = %+v, %v: the gateway would refuse every session of a database user", st, err)
	}
}

func TestOperations_CaddyfileUsersAreManagedInTheCaddyfile(t *testing.T) {
	d := testDatabase(t, "carol")
	hash := mustHash(t, "pw")
	for name, op := range map[string]func() (operator.Report, error){
		"add":    func() (operator.Report, error) { return d.users().Add("Carol", hash) },
		"passwd": func() (operator.Report, error) { return d.users().ChangePassword("carol", hash) },
		"remove": func() (operator.Report, error) { return d.users().Remove("carol") },
	} {
		_, err := op()
		if refusal(t, err) != http.StatusConflict || !strings.Contains(err.Error(), "`user` line in the Caddyfile") {
			t.Errorf("%s of a Caddyfile user: %v, want a 409 naming the Caddyfile", name, err)
		}
	}
}

func TestOperations_AddTwiceAndUnknownUsersAreRefused(t *testing.T) {
	d := testDatabase(t)
	hash := mustHash(t, "pw")
	if _, err := d.users().Add("bob", hash); err != nil {
		t.Fatal(err)
	}
	_, err := d.users().Add("BOB", hash)
	if refusal(t, err) != http.StatusConflict || !strings.Contains(err.Error(), "user passwd bob") {
		t.Errorf("second add: %v", err)
	}
	for name, op := range map[string]func() (operator.Report, error){
		"passwd":    func() (operator.Report, error) { return d.users().ChangePassword("nobody", hash) },
		"remove":    func() (operator.Report, error) { return d.users().Remove("nobody") },
		"reset-2fa": func() (operator.Report, error) { return d.users().ResetTwoFactor("nobody", time.Now()) },
	} {
		if _, err := op(); refusal(t, err) != http.StatusNotFound {
			t.Errorf("%s of an unknown user: %v, want 404", name, err)
		}
	}
	if _, err := d.users().Add("bob", []byte("hunter2")); refusal(t, err) != http.StatusBadRequest {
		t.Errorf("add with a plaintext password as hash: %v, want 400", err)
	}
}

func TestOperations_UserNamesNoOneCanTypeAreRefused(t *testing.T) {
	d := testDatabase(t)
	for _, name := range []string{"", "   ", strings.Repeat("a", 129), "bob\x00", "bo\nb"} {
		if _, err := d.users().Add(name, mustHash(t, "pw")); refusal(t, err) != http.StatusBadRequest {
			t.Errorf("addUser(%q): %v, want 400", name, err)
		}
	}
}

func TestOperations_PasswdEndsSessions(t *testing.T) {
	d := testDatabase(t)
	if _, err := d.users().Add("bob", mustHash(t, "old")); err != nil {
		t.Fatal(err)
	}
	before := generation(t, d, "bob")
	if _, err := d.users().ChangePassword("bob", mustHash(t, "new")); err != nil {
		t.Fatal(err)
	}
	acct, err := d.db.Account("bob")
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword(acct.PasswordHash, []byte("new")) != nil {
		t.Error("the new password is not stored")
	}
	if generation(t, d, "bob") <= before {
		t.Error("passwd left bob's sessions valid")
	}
}

func TestOperations_ResetTwoFactorForcesEnrollmentAndEndsSessions(t *testing.T) {
	d := testDatabase(t, "carol", "dave")
	enrollUser(t, d, "carol")
	now := time.Now()
	lock(t, d, "user:carol", now)
	if u := findUser(mustList(t, d, now), "carol"); u == nil || !u.TwoFactor || u.BackupCodesLeft != 10 {
		t.Fatalf("carol before reset = %+v, want 2FA on with 10 codes", u)
	}
	before := generation(t, d, "carol")
	r, err := d.users().ResetTwoFactor("carol", now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Message, "Reset the 2FA of carol") || !strings.Contains(r.Message, "user unlock carol") {
		t.Errorf("message %q: want the reset and a hint to unlock", r.Message)
	}
	if u := findUser(mustList(t, d, now), "carol"); u == nil || u.TwoFactor || u.BackupCodesLeft != 0 {
		t.Errorf("carol after reset = %+v, want 2FA off", u)
	}
	if generation(t, d, "carol") <= before {
		t.Error("reset-2fa left carol's sessions valid")
	}
	if r, err := d.users().ResetTwoFactor("dave", now); err != nil {
		t.Errorf("reset of a Caddyfile user without 2FA: %v", err)
	} else if !strings.Contains(r.Message, "nothing to reset") {
		t.Errorf("message %q", r.Message)
	}
}

func TestOperations_UnlockLiftsUserAndIPLocks(t *testing.T) {
	d := testDatabase(t, "carol")
	now := time.Now()
	lock(t, d, "user:carol", now)
	lock(t, d, gateway.ClientKey("2001:db8::1"), now) // counted by its /64
	lock(t, d, "user:admin", now)                     // a guessed name, no user
	l := mustList(t, d, now)
	if u := findUser(l, "carol"); u == nil || u.LockedUntil == nil || !u.LockedUntil.After(now.Add(59*time.Minute)) {
		t.Fatalf("carol = %+v, want locked for an hour", u)
	}
	if len(l.LockedClientIPs) != 1 || l.LockedClientIPs[0].Name != "2001:db8::/64" {
		t.Errorf("locked IPs = %+v", l.LockedClientIPs)
	}
	if len(l.LockedUnknownNames) != 1 || l.LockedUnknownNames[0].Name != "admin" {
		t.Errorf("locked unknown names = %+v", l.LockedUnknownNames)
	}

	if r, err := d.users().UnlockUser("Carol", now); err != nil || !strings.Contains(r.Message, "Unlocked carol") {
		t.Fatalf("unlockUser = %+v, %v", r, err)
	}
	if r, err := d.users().UnlockIP("2001:0db8:0:0::1", now); err != nil || !strings.Contains(r.Message, "Unlocked 2001:db8::/64") {
		t.Fatalf("unlockIP = %+v, %v", r, err)
	}
	l = mustList(t, d, now)
	if u := findUser(l, "carol"); u.LockedUntil != nil || len(l.LockedClientIPs) != 0 {
		t.Errorf("after unlock: carol %+v, IPs %+v", u, l.LockedClientIPs)
	}
	if r, _ := d.users().UnlockUser("carol", now); !strings.Contains(r.Message, "was not locked") {
		t.Errorf("second unlock: %q", r.Message)
	}
	if _, err := d.users().UnlockIP("not-an-ip", now); refusal(t, err) != http.StatusBadRequest {
		t.Errorf("unlockIP(not-an-ip): %v", err)
	}
}

func TestOperations_RemoveDeletesTheUserAndEndsSessions(t *testing.T) {
	d := testDatabase(t)
	if _, err := d.users().Add("bob", mustHash(t, "pw")); err != nil {
		t.Fatal(err)
	}
	enrollUser(t, d, "bob")
	before := generation(t, d, "bob")
	if r, err := d.users().Remove("bob"); err != nil || !strings.Contains(r.Message, "Removed bob") {
		t.Fatalf("removeUser = %+v, %v", r, err)
	}
	if findUser(mustList(t, d, time.Now()), "bob") != nil {
		t.Error("bob still listed")
	}
	if generation(t, d, "bob") <= before {
		t.Error("remove left bob's sessions valid")
	}
	st, err := d.db.SessionState("bob")
	if err != nil || st.PasswordSet {
		t.Errorf("SessionState(bob) after remove = %+v, %v", st, err)
	}
}

func TestOperations_OfflineListingCannotSeeTheCaddyfile(t *testing.T) {
	d := offlineDatabase(t)
	enrollUser(t, d, "carol") // 2FA state of a Caddyfile user
	if _, err := d.users().Add("bob", mustHash(t, "pw")); err != nil {
		t.Fatal(err)
	}
	l := mustList(t, d, time.Now())
	if l.SourcesKnown {
		t.Error("an offline listing claims to know the configuration")
	}
	if u := findUser(l, "carol"); u == nil || u.Source != operator.SourceUnknown {
		t.Errorf("carol = %+v, want source %q", u, operator.SourceUnknown)
	}
	if u := findUser(l, "bob"); u == nil || u.Source != operator.SourceDatabase {
		t.Errorf("bob = %+v, want source database", u)
	}
}

func TestHold_UserLineForADatabaseUserIsRefused(t *testing.T) {
	d := offlineDatabase(t)
	if _, err := d.users().Add("dave", mustHash(t, "pw")); err != nil {
		t.Fatal(err)
	}
	enrollUser(t, d, "carol") // state without a password is no conflict
	err := d.hold(new(TOTPAuth), holder{users: map[string]bool{"dave": true, "carol": true}})
	if err == nil || !strings.Contains(err.Error(), "user dave is defined both") || !strings.Contains(err.Error(), "user remove dave") {
		t.Fatalf("hold = %v, want a refusal that names dave and the fix", err)
	}
	if err := d.hold(new(TOTPAuth), holder{users: map[string]bool{"carol": true}}); err != nil {
		t.Errorf("a Caddyfile user with 2FA state: %v", err)
	}
}

func TestBackup_CopyOpensWithTheKey(t *testing.T) {
	d := testDatabase(t)
	if _, err := d.users().Add("bob", mustHash(t, "pw")); err != nil {
		t.Fatal(err)
	}
	enrollUser(t, d, "bob")
	var buf bytes.Buffer
	var begun backupReport
	r, err := d.backup(&buf, func(b backupReport) { begun = b })
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes != int64(buf.Len()) || r.KeyID == "" || begun.KeyID != r.KeyID {
		t.Fatalf("report %+v (begun %+v) for %d bytes", r, begun, buf.Len())
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := writeFileAtomically(copyPath, func(w io.Writer) error { _, err := w.Write(buf.Bytes()); return err }); err != nil {
		t.Fatal(err)
	}
	key, _ := secrets.ParseKey(key64)
	restored, err := storage.Open(copyPath, storage.Options{Keys: []secrets.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	acct, err := restored.Account("bob")
	if err != nil || acct.TOTPSecret != "JBSWY3DPEHPK3PXP" || acct.PasswordHash == nil {
		t.Fatalf("restored bob = %+v, %v", acct, err)
	}
}

func TestOperations_UserMovedFromTheCaddyfileKeepsTheirAuthenticator(t *testing.T) {
	d := testDatabase(t) // the `user carol` line is gone
	enrollUser(t, d, "carol")
	r, err := d.users().Add("carol", mustHash(t, "pw"))
	if err != nil || !strings.Contains(r.Message, "keeps the 2FA enrollment") || !strings.Contains(r.Message, "reset-2fa carol") {
		t.Fatalf("addUser = %+v, %v", r, err)
	}
	if acct, err := d.db.Account("carol"); err != nil || acct.TOTPSecret == "" || acct.PasswordHash == nil {
		t.Errorf("carol = %+v, %v; want the password and the authenticator", acct, err)
	}
}

func TestPasswordCheck_RefusesBeforeAnyoneTypes(t *testing.T) {
	l := operator.Listing{Users: []operator.UserReport{{Name: "bob", Source: operator.SourceDatabase}, {Name: "carol", Source: operator.SourceConfig}, {Name: "erin", Source: operator.SourceNone}}}
	tests := []struct {
		op     operator.Operation
		name   string
		status int // 0: no refusal
	}{
		{"users/add", "dave", 0},
		{"users/add", "erin", 0},
		{"users/add", "Bob", http.StatusConflict},
		{"users/add", "carol", http.StatusConflict},
		{"users/add", "", http.StatusBadRequest},
		{"users/passwd", "bob", 0},
		{"users/passwd", "carol", http.StatusConflict},
		{"users/passwd", "dave", http.StatusNotFound},
		{"users/passwd", "erin", http.StatusNotFound},
	}
	for _, tc := range tests {
		err := operator.CheckPassword(l, tc.op, tc.name)
		if tc.status == 0 {
			if err != nil {
				t.Errorf("%s %q: %v", tc.op, tc.name, err)
			}
			continue
		}
		if got := refusal(t, err); got != tc.status {
			t.Errorf("%s %q: status %d (%v), want %d", tc.op, tc.name, got, err, tc.status)
		}
	}
}
