package caddymodule

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage"
)

func TestUnmarshalCaddyfile_Passkeys(t *testing.T) {
	var got TOTPAuth
	d := caddyfile.NewTestDispenser(`totp_auth {
		passkeys
		passkey_rp_id example.com
		passkey_login
	}`)
	if err := got.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if !got.Passkeys || got.PasskeyRPID != "example.com" || !got.PasskeyLogin {
		t.Fatalf("parsed %+v", got)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"passkeys":true`, `"passkey_rp_id":"example.com"`, `"passkey_login":true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
}

func TestUnmarshalCaddyfile_PasskeysTakesNoValue(t *testing.T) {
	for _, input := range []string{"totp_auth {\n passkeys on\n}", "totp_auth {\n passkey_login yes\n}", "totp_auth {\n passkey_rp_id\n}"} {
		var got TOTPAuth
		err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), "write ") {
			t.Errorf("%q: error %v, want one that shows how to write it", input, err)
		}
	}
}

func TestMetrics_SignInsCountByFactor(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	d := testDatabase(t)
	before := gather(t, reg)
	for _, e := range []gateway.Event{
		{Kind: gateway.EventSignIn, Outcome: gateway.OutcomeOK, Factor: gateway.FactorPasskey},
		{Kind: gateway.EventSignIn, Outcome: gateway.OutcomeOK, Factor: gateway.FactorPasskey},
		{Kind: gateway.EventSignIn, Outcome: gateway.OutcomeOK, Factor: gateway.FactorTOTP},
	} {
		recordEvent(d, e)
	}
	after := gather(t, reg)
	for name, want := range map[string]float64{
		"caddy_totp_auth_sign_ins_by_factor_total{passkey}":     2,
		"caddy_totp_auth_sign_ins_by_factor_total{totp}":        1,
		"caddy_totp_auth_sign_ins_by_factor_total{backup_code}": 0,
		"caddy_totp_auth_sign_ins_total{ok}":                    3,
	} {
		if _, present := after[name]; !present {
			t.Errorf("%s is not exported", name)
		}
		if got := after[name] - before[name]; got != want {
			t.Errorf("%s rose by %v, want %v", name, got, want)
		}
	}
}

// addPasskey gives user a passkey with this id in the store.
func addPasskey(t *testing.T, s account.Store, user string, id []byte) {
	t.Helper()
	now := time.Now()
	if err := s.UpdateAccount(user, func(a *account.Account) error {
		return a.AddPasskey(account.Passkey{ID: id, Name: "Key " + string(rune('A'+id[0])), PublicKey: []byte{1}, RPID: "example.com", Created: now})
	}); err != nil {
		t.Fatal(err)
	}
}

func TestOperations_PasskeysListedAndRemovedWithSessionsEnded(t *testing.T) {
	d := testDatabase(t)
	if _, err := d.users().Add("bob", mustHash(t, "password1")); err != nil {
		t.Fatal(err)
	}
	addPasskey(t, d.db, "bob", []byte{0})
	addPasskey(t, d.db, "bob", []byte{1})
	l, err := d.users().Passkeys("Bob")
	if err != nil || len(l.Passkeys) != 2 || l.Passkeys[0].ID != "AA" || l.Passkeys[0].Name != "Key A" {
		t.Fatalf("passkeys: %v %+v", err, l)
	}
	if u := findUser(mustList(t, d, time.Now()), "bob"); u == nil || !u.TwoFactor || u.Passkeys != 2 {
		t.Fatalf("user list: %+v", u)
	}
	gen := generation(t, d, "bob")
	r, err := d.users().RemovePasskey("bob", "AA")
	if err != nil || !strings.Contains(r.Message, "Removed passkey AA of bob") {
		t.Fatalf("remove: %v %+v", err, r)
	}
	if generation(t, d, "bob") == gen {
		t.Error("removing a passkey left the user's sessions")
	}
	r, err = d.users().RemovePasskey("bob", "AQ")
	if err != nil || !strings.Contains(r.Message, "last second factor") {
		t.Fatalf("remove the last: %v %+v", err, r)
	}
	if _, err := d.users().RemovePasskey("bob", "AQ"); refusal(t, err) != 404 {
		t.Fatalf("removing it twice: %v", err)
	}
	if _, err := d.users().RemovePasskey("bob", "not base64!"); refusal(t, err) != 400 {
		t.Fatalf("a malformed id: %v", err)
	}
}

func TestOperations_ResetTwoFactorRemovesPasskeys(t *testing.T) {
	d := testDatabase(t)
	if _, err := d.users().Add("bob", mustHash(t, "password1")); err != nil {
		t.Fatal(err)
	}
	addPasskey(t, d.db, "bob", []byte{0})
	r, err := d.users().ResetTwoFactor("bob", time.Now())
	if err != nil || !strings.Contains(r.Message, "Reset the 2FA of bob") {
		t.Fatalf("reset-2fa of a passkey-only user: %v %+v", err, r)
	}
	if l, _ := d.users().Passkeys("bob"); len(l.Passkeys) != 0 {
		t.Fatalf("reset-2fa left passkeys: %+v", l)
	}
}

func TestAdminAPI_PasskeysListedAndRemoved(t *testing.T) {
	db := adminDB(t)
	d, err := findDatabase(db)
	if err != nil {
		t.Fatal(err)
	}
	addPasskey(t, d.db, "carol", []byte{0})
	rec, err := adminCall(t, http.MethodGet, "/totp-auth/users/passkeys?db="+db+"&user=carol", "")
	if err != nil || !strings.Contains(rec.Body.String(), `"id":"AA"`) || strings.Contains(rec.Body.String(), "public") {
		t.Fatalf("list: %v %s", err, rec.Body)
	}
	body, _ := json.Marshal(adminRequest{DB: db, User: "carol", Passkey: "AA"})
	rec, err = adminCall(t, http.MethodPost, "/totp-auth/users/remove-passkey", string(body))
	if err != nil || !strings.Contains(rec.Body.String(), "Removed passkey AA of carol") {
		t.Fatalf("remove: %v %s", err, rec.Body)
	}
	if l, _ := d.users().Passkeys("carol"); len(l.Passkeys) != 0 {
		t.Fatalf("after removal: %+v", l)
	}
}

func TestCommands_PasskeyCommandsAreThere(t *testing.T) {
	root := newCommandTree()
	for _, path := range [][]string{{"user", "passkeys"}, {"user", "remove-passkey"}} {
		cmd, rest, err := root.Find(path)
		if err != nil || len(rest) != 0 || cmd.Name() != path[len(path)-1] || cmd.Short == "" {
			t.Errorf("%v: %v (rest %v)", path, err, rest)
		}
	}
}
func TestProvision_PasskeyRPIDMustCoverTheCookieDomain(t *testing.T) {
	h := &TOTPAuth{DBPath: filepath.Join(t.TempDir(), "totp.db"), EncryptionKey: key64,
		CookieDomain: "example.com", Passkeys: true, PasskeyRPID: "app.example.com"}
	err := provision(t, h)
	if err == nil {
		_ = h.Cleanup()
		t.Fatal("a passkey_rp_id below cookie_domain was accepted")
	}
	if !strings.Contains(err.Error(), "passkey_rp_id") {
		t.Fatalf("error %q does not name passkey_rp_id", err)
	}
	h = &TOTPAuth{DBPath: filepath.Join(t.TempDir(), "totp.db"), EncryptionKey: key64, Passkeys: true, PasskeyRPID: "https://example.com"}
	if err := provision(t, h); err == nil || !strings.Contains(err.Error(), "bare lower-case domain") {
		_ = h.Cleanup()
		t.Fatalf("a passkey_rp_id with a scheme: %v", err)
	}
}

// A passkey's id is the authenticator's, in base64url: about one in 64
// begins with "-", which the command line reads as a flag unless it comes
// after "--", as the command's help says.
func TestCommands_RemovePasskeyTakesAnIDThatBeginsWithADash(t *testing.T) {
	path := databaseFileWithUser(t, "bob", func(db *storage.DB) {
		addPasskey(t, db, "bob", []byte{0xf8, 0}) // "-AA"
	})
	if _, _, err := runCommands(t, "user", "remove-passkey", "--db", path, "--key", key64, "bob", "-AA"); err == nil {
		t.Fatal(`an id beginning with "-" was taken without "--"; the help's advice is then wrong`)
	}
	out, errOut, err := runCommands(t, "user", "remove-passkey", "--db", path, "--key", key64, "bob", "--", "-AA")
	if err != nil || !strings.Contains(out, "Removed passkey -AA of bob") {
		t.Fatalf("remove-passkey bob -- -AA: %v\n%s%s", err, out, errOut)
	}
	root := newCommandTree()
	cmd, _, _ := root.Find([]string{"user", "remove-passkey"})
	if !strings.Contains(cmd.Long, "--") {
		t.Errorf("remove-passkey's help does not say how to give an id that begins with -:\n%s", cmd.Long)
	}
}
