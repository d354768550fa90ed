package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/storage/secrets"
)

// These tests are an operator at the terminal: they run the built binary's
// `caddy totp-auth ...` commands, once against a running Caddy (the
// commands go through its admin API) and once against a stopped one (the
// commands open the database file), and check the effect through HTTP.

// cli runs `caddy totp-auth args...` with stdin as its input and env added
// to c's environment. Unless args give Caddy's configuration (--config),
// they are given c's admin address, before a "--" if there is one.
func (c *caddyProc) cli(stdin string, env []string, args ...string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !slices.Contains(args, "--config") {
		at := len(args)
		if i := slices.Index(args, "--"); i >= 0 {
			at = i // flags go before the "--" that ends them
		}
		args = slices.Concat(args[:at:at], []string{"--address", c.admin}, args[at:])
	}
	args = append([]string{"totp-auth"}, args...)
	cmd := exec.CommandContext(ctx, caddyBin, args...)
	cmd.Env = append(c.env(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// operatorModes are the two ways the commands meet a database.
var operatorModes = []struct {
	name    string
	running bool
}{
	{"caddy running", true},
	{"caddy stopped", false},
}

// operator runs commands in one mode. With Caddy stopped, each command
// stops Caddy first and starts it again afterwards, so that the test can
// see the command's effect through HTTP.
type operator struct {
	t       *testing.T
	c       *caddyProc
	cfg     string
	port    int
	running bool
	env     []string
	// flags are given to every command.
	flags []string
}

func (op *operator) run(stdin string, args ...string) (string, error) {
	op.t.Helper()
	if !op.running {
		op.c.stop()
		defer op.c.start(op.cfg, op.port)
	}
	return op.c.cli(stdin, op.env, append(args, op.flags...)...)
}

// must runs a command that has to succeed and returns its output.
func (op *operator) must(stdin string, args ...string) string {
	op.t.Helper()
	out, err := op.run(stdin, args...)
	if err != nil {
		op.t.Fatalf("caddy totp-auth %s (%s): %v\n%s", strings.Join(args, " "), op.mode(), err, out)
	}
	return out
}

// refused runs a command that has to fail and returns its output.
func (op *operator) refused(stdin string, args ...string) string {
	op.t.Helper()
	out, err := op.run(stdin, args...)
	if err == nil {
		op.t.Fatalf("caddy totp-auth %s (%s) succeeded, want a refusal\n%s", strings.Join(args, " "), op.mode(), out)
	}
	return out
}

func (op *operator) mode() string {
	if op.running {
		return "caddy running"
	}
	return "caddy stopped"
}

// keyFileBlock is a totp_auth block on db with the key in the default key
// file beside it.
func (c *caddyProc) keyFileBlock(db string, users []string, extra ...string) string {
	return strings.Replace(c.totpAuth(db, users, extra...), "\t\tencryption_key "+testKey+"\n", "", 1)
}

// defaultBlock is a totp_auth block with the database and its key where
// they are by default, as a homelab configuration has it: the commands
// find that database without --db, whether Caddy runs or not.
func (c *caddyProc) defaultBlock(users []string, extra ...string) string {
	return strings.Replace(c.keyFileBlock("", users, extra...), "\t\tdb_path "+c.path("")+"\n", "", 1)
}

// defaultDB is where the database of defaultBlock is.
func (c *caddyProc) defaultDB() string { return c.path("data/caddy/totp_auth/totp.db") }

// row returns the fields of the line of a `user list` table for user, or
// nil if there is none.
func row(out, user string) []string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[0] == user {
			return f
		}
	}
	return nil
}

// expectRow checks the name, source, 2FA and backup-code columns of user's
// row and whether the user is shown locked.
func expectRow(t *testing.T, out, user, source, twoFA, codes string, locked bool) {
	t.Helper()
	f := row(out, user)
	if f == nil {
		t.Fatalf("user list has no row for %s:\n%s", user, out)
	}
	if f[1] != source || f[2] != twoFA || f[3] != codes || (f[4] != "-") != locked {
		t.Fatalf("user list row for %s = %q, want source %s, 2FA %s, %s backup codes, locked %v:\n%s",
			user, strings.Join(f, " "), source, twoFA, codes, locked, out)
	}
}

func expectOutput(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

func loginStatus(t *testing.T, port int, user, password string) (int, string) {
	t.Helper()
	r := login(newClient(t, port), user, password)
	status, _ := r.json(t)["status"].(string)
	return r.status, status
}

func TestOperations_UserCommands(t *testing.T) {
	t.Parallel()
	for _, mode := range operatorModes {
		// The operator either gives Caddy's configuration, as for caddy
		// reload, or only the admin address (the database is where it is
		// by default).
		for _, withConfig := range []bool{false, true} {
			name := mode.name + ", --address"
			if withConfig {
				name = mode.name + ", --config"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				testUserCommands(t, mode.running, withConfig)
			})
		}
	}
}

func testUserCommands(t *testing.T, running, withConfig bool) {
	c := newCaddy(t)
	port := freePort(t)
	cfg := c.caddyfile("", site(port, c.defaultBlock([]string{"carol"}, "max_failures 3"), "respond ok"))
	c.start(cfg, port)
	op := &operator{t: t, c: c, cfg: cfg, port: port, running: running}
	if withConfig {
		op.flags = []string{"--config", c.path("Caddyfile")}
	}
	// Whether the commands know the Caddyfile's users.
	sourcesKnown := running || withConfig

	// A database user and a Caddyfile user, side by side.
	expectOutput(t, "user add", op.must(testPassword+"\n", "user", "add", "Bob", "--cost", "4"), "Added bob")
	bob := newClient(t, port)
	bobEnrollment := enroll(t, bob, "bob")
	enroll(t, newClient(t, port), "carol")

	out := op.must("", "user", "list")
	expectRow(t, out, "bob", "database", "on", "10", false)
	if sourcesKnown {
		expectRow(t, out, "carol", "Caddyfile", "on", "10", false)
	} else {
		expectRow(t, out, "carol", "Caddyfile?", "on", "10", false)
	}
	if running {
		expectOutput(t, "user list", out, "through the running Caddy")
		if !strings.Contains(c.log.String(), `"uri":"/totp-auth/users?db=`) {
			t.Error("the list did not go through Caddy's admin API")
		}
	} else {
		expectOutput(t, "user list", out, "read directly: Caddy is not running")
	}
	js := op.must("", "user", "list", "--json")
	if strings.Contains(js, bobEnrollment.secret) || strings.Contains(js, "$2a$") {
		t.Fatalf("user list --json reveals a secret or a hash:\n%s", js)
	}
	if sourcesKnown {
		out := op.refused("", "user", "add", "carol", "--cost", "4") // refused before the password is asked for
		expectOutput(t, "user add of a Caddyfile user", out, "carol is defined by a `user` line in the Caddyfile")
		op.refused("x\n", "user", "passwd", "carol", "--cost", "4")
		op.refused("", "user", "remove", "carol")
	}
	op.refused(testPassword+"\n", "user", "add", "bob", "--cost", "4")
	// A password under 8 characters is refused, with the reason.
	expectOutput(t, "user add with a short password", op.refused("short1\n", "user", "add", "eve", "--cost", "4"), "shorter than 8 characters")
	expectOutput(t, "user passwd with a short password", op.refused("x\n", "user", "passwd", "bob", "--cost", "4"), "shorter than 8 characters")
	// So are the most common passwords, and names with a space or a colon.
	expectOutput(t, "user add with a common password", op.refused("Password1\n", "user", "add", "eve", "--cost", "4"), "most common passwords")
	expectOutput(t, "user passwd with a common password", op.refused("iloveyou\n", "user", "passwd", "bob", "--cost", "4"), "most common passwords")
	expectOutput(t, "user add with a space in the name", op.refused(testPassword+"\n", "user", "add", "eve smith", "--cost", "4"), "contains a space")
	expectOutput(t, "user add with a colon in the name", op.refused(testPassword+"\n", "user", "add", "eve:x", "--cost", "4"), "contains a colon")

	// passwd: the new password works, the old one and every session end.
	const newPassword = "a new password for bob"
	expectOutput(t, "user passwd", op.must(newPassword+"\n", "user", "passwd", "bob", "--cost", "4"), "Changed the password of bob")
	if status, _ := loginStatus(t, port, "bob", testPassword); status != http.StatusUnauthorized {
		t.Fatalf("old password after passwd: status %d, want 401", status)
	}
	if status, next := loginStatus(t, port, "bob", newPassword); status != http.StatusOK || next != "2fa_required" {
		t.Fatalf("new password after passwd: %d %s, want 200 2fa_required", status, next)
	}
	if user, _ := whoami(t, bob); user != "" {
		t.Fatal("bob's session survived passwd")
	}

	// unlock: a locked user signs in again.
	for i := 0; i < 3; i++ {
		loginStatus(t, port, "bob", "wrong")
	}
	if status, _ := loginStatus(t, port, "bob", newPassword); status != http.StatusTooManyRequests {
		t.Fatalf("right password after 3 failures: status %d, want 429", status)
	}
	expectRow(t, op.must("", "user", "list"), "bob", "database", "on", "10", true)
	expectOutput(t, "user unlock", op.must("", "user", "unlock", "bob"), "Unlocked bob")
	if status, next := loginStatus(t, port, "bob", newPassword); status != http.StatusOK || next != "2fa_required" {
		t.Fatalf("after unlock: %d %s, want 200 2fa_required", status, next)
	}
	expectOutput(t, "user unlock of an unlocked user", op.must("", "user", "unlock", "bob"), "bob was not locked")

	// reset-2fa: the next sign-in enrolls again.
	expectOutput(t, "user reset-2fa", op.must("", "user", "reset-2fa", "bob"), "Reset the 2FA of bob")
	if status, next := loginStatus(t, port, "bob", newPassword); status != http.StatusOK || next != "enroll_required" {
		t.Fatalf("after reset-2fa: %d %s, want 200 enroll_required", status, next)
	}
	expectRow(t, op.must("", "user", "list"), "bob", "database", "off", "-", false)

	// remove: bob is gone.
	expectOutput(t, "user remove", op.must("", "user", "remove", "bob"), "Removed bob")
	if status, _ := loginStatus(t, port, "bob", newPassword); status != http.StatusUnauthorized {
		t.Fatalf("after remove: status %d, want 401", status)
	}
	if out := op.must("", "user", "list"); row(out, "bob") != nil {
		t.Fatalf("bob still listed after remove:\n%s", out)
	}
	op.refused("", "user", "remove", "bob")
}

func TestOperations_UserInBothCaddyfileAndDatabaseIsAStartupError(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	without := c.caddyfile("", site(port, c.keyFileBlock("totp.db", []string{"carol"}), "respond ok"))
	with := c.caddyfile("", site(port, c.keyFileBlock("totp.db", []string{"carol", "dave"}), "respond ok"))

	// Caddy stopped: the command creates the database and adds dave.
	out, err := c.cli(testPassword+"\n", nil, "user", "add", "dave", "--db", c.path("totp.db"), "--cost", "4")
	if err != nil {
		t.Fatalf("user add on a new database: %v\n%s", err, out)
	}
	want := "user dave is defined both by a `user` line in the configuration and in the database"
	if err := c.tryStart(with, port); err == nil {
		t.Fatal("caddy started with dave both in the Caddyfile and in the database")
	}
	if !c.waitExit(10 * time.Second) {
		t.Fatal("caddy did not exit")
	}
	if log := strings.ReplaceAll(c.log.String(), `\"`, `"`); !strings.Contains(log, want) {
		t.Fatalf("the start-up error does not say what is wrong:\n%s", log)
	}

	// Caddy running: a reload that adds the line is refused, and dave, the
	// database user, still signs in.
	c.start(without, port)
	status, body, _ := c.reload(with)
	if status == http.StatusOK || !strings.Contains(strings.ReplaceAll(body, `\"`, `"`), want) {
		t.Fatalf("reload with dave in both: status %d, want a refusal saying %q:\n%s", status, want, body)
	}
	if status, next := loginStatus(t, port, "dave", testPassword); status != http.StatusOK || next != "enroll_required" {
		t.Fatalf("dave after the refused reload: %d %s", status, next)
	}
}

// newKeyIn returns the 64-hex-digit key rotate-key printed for the
// configuration.
func newKeyIn(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`encryption_key\s+([0-9a-f]{64})\b`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rotate-key printed no new key:\n%s", out)
	}
	return m[1]
}

// signIn completes a sign-in of a user enrolled at en with the code of
// step offset (in 30-second steps after the enrollment's), which proves
// the TOTP secret decrypts.
func signIn(t *testing.T, port int, user, password string, en enrollment, step int) {
	t.Helper()
	b := newClient(t, port)
	r := login(b, user, password)
	expect(t, "POST login of "+user, r, http.StatusOK)
	if got := r.json(t)["status"]; got != "2fa_required" {
		t.Fatalf("POST login of %s: status %v, want 2fa_required", user, got)
	}
	r = b.api("POST", "2fa", map[string]string{"code": totp(t, en.secret, en.codeTime.Add(time.Duration(step)*30*time.Second))})
	expect(t, "POST 2fa of "+user, r, http.StatusOK)
	if u, status := whoami(t, b); u != user {
		t.Fatalf("after signing in: whoami %q (status %d), want %s\n%s", u, status, user, b.api("GET", "whoami", nil).body)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestRotateKey_KeyFile(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	db := c.defaultDB()
	cfg := c.caddyfile("", site(port, c.defaultBlock([]string{"carol"}, "drift 4"), "respond ok"))
	c.start(cfg, port)
	if out, err := c.cli(testPassword+"\n", nil, "user", "add", "bob", "--cost", "4"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	// bob's session is from before the rotations: its cookie keys are
	// secrets at rest too, and must survive them.
	session := newClient(t, port)
	users := map[string]enrollment{"bob": enroll(t, session, "bob"), "carol": enroll(t, newClient(t, port), "carol")}

	var retiredFiles []string
	for step, mode := range operatorModes {
		t.Logf("rotating with %s", mode.name)
		old := readFile(t, db+".key")
		if !mode.running {
			c.stop()
		}
		out, err := c.cli("", nil, "rotate-key")
		if err != nil {
			t.Fatalf("rotate-key (%s): %v\n%s", mode.name, err, out)
		}
		oldKey, err := secrets.ParseKey(old)
		if err != nil {
			t.Fatal(err)
		}
		retired := db + ".key." + oldKey.ID()
		// A short confirmation: the new key's file, and where the old one
		// stays for the backups made before; not every key retired before.
		expectOutput(t, "rotate-key", out, "Rotated to key ", db+".key;", "the old key "+oldKey.ID()+" stays in "+retired+" for backups made before now.")
		for _, earlier := range retiredFiles {
			if strings.Contains(out, earlier) {
				t.Errorf("rotate-key (%s) lists the key retired earlier in %s: the message grows with every rotation\n%s", mode.name, earlier, out)
			}
		}
		if strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("rotate-key (%s) printed more than one line:\n%s", mode.name, out)
		}
		retiredFiles = append(retiredFiles, retired)
		if strings.Contains(out, old) {
			t.Fatal("rotate-key printed the old key")
		}
		newKey := readFile(t, db+".key")
		if newKey == old || strings.Contains(out, newKey) {
			t.Fatalf("rotate-key (%s): key file unchanged, or the new key printed", mode.name)
		}
		if kept := readFile(t, retired); kept != old {
			t.Fatalf("rotate-key (%s): %s does not hold the replaced key", mode.name, retired)
		}
		if mode.running {
			// Every user signs in through the running Caddy, whose key changed under it.
			for user, en := range users {
				signIn(t, port, user, testPassword, en, 1)
			}
			c.stop()
		}

		// The old key alone no longer opens the database.
		out, err = c.cli("", nil, "user", "list", "--db", db, "--key", old)
		if err == nil || !strings.Contains(out, "encrypted under key id") {
			t.Fatalf("the old key alone still opens the database after rotation (%s): %v\n%s", mode.name, err, out)
		}

		// A restart finishes the rotation: everyone signs in; the retired
		// key stays for the backups made under it, with every earlier one.
		c.start(cfg, port)
		for user, en := range users {
			signIn(t, port, user, testPassword, en, 2+step)
		}
		if kept := readFile(t, retired); kept != old {
			t.Fatalf("%s is gone or changed after a start", retired)
		}

		if user, _ := whoami(t, session); user != "bob" {
			t.Fatalf("bob's session ended with the rotation (%s)", mode.name)
		}
	}
}

func TestRotateKey_ConfiguredKeyRotatesWhenTheConfigurationNamesTheNewOne(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	db := c.path("totp.db")
	config := func(key string, old ...string) string {
		extra := []string{"drift 4"}
		if len(old) > 0 {
			extra = append(extra, "old_encryption_keys "+strings.Join(old, " "))
		}
		block := strings.Replace(c.totpAuth("totp.db", []string{"carol"}, extra...), testKey, key, 1)
		return c.caddyfile("", site(port, block, "respond ok"))
	}
	c.start(config(testKey), port)
	session := newClient(t, port)
	carol := enroll(t, session, "carol")

	// rotate-key cannot change the configuration: it prints the steps.
	out, err := c.cli("", nil, "rotate-key")
	if err != nil {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}
	expectOutput(t, "rotate-key", out, "Nothing was changed", "old_encryption_keys", "caddy reload")
	second := newKeyIn(t, out)
	if strings.Contains(out, testKey) {
		t.Fatal("rotate-key printed the current key")
	}

	// A reload that names the new key and keeps the old one re-encrypts.
	status, body, _ := c.reload(config(second, testKey))
	if status != http.StatusOK {
		t.Fatalf("reload with the new key: %d %s", status, body)
	}
	if !logShows(c, "re-encrypted every secret under the new encryption_key") {
		t.Fatal("the reload did not re-encrypt")
	}
	signIn(t, port, "carol", testPassword, carol, 1)
	c.stop()
	key := func(k string) []string { return []string{"TOTP_AUTH_KEY=" + k} }
	if out, err := c.cli("", key(testKey), "user", "list", "--db", db); err == nil || !strings.Contains(out, "encrypted under key id") {
		t.Fatalf("the old key alone still opens the database: %v\n%s", err, out)
	}
	if out, err := c.cli("", key(second), "user", "list", "--db", db); err != nil {
		t.Fatalf("the new key does not open the database: %v\n%s", err, out)
	}

	// With Caddy stopped it prints the steps too, and a start with both
	// keys (a restart in the middle of a rotation) re-encrypts at open.
	out, err = c.cli("", key(second), "rotate-key", "--db", db)
	if err != nil {
		t.Fatalf("rotate-key with Caddy stopped: %v\n%s", err, out)
	}
	third := newKeyIn(t, out)
	c.start(config(third, second), port)
	signIn(t, port, "carol", testPassword, carol, 2)
	c.stop()
	c.start(config(third), port)
	signIn(t, port, "carol", testPassword, carol, 3)
	if user, _ := whoami(t, session); user != "carol" {
		t.Fatal("carol's session ended with the rotations")
	}
}

func TestBackup_WhileServingAndStopped_RestoresAndSignsIn(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	db := c.path("totp.db")
	c.start(c.caddyfile("", site(port, c.keyFileBlock("totp.db", []string{"carol"}, "max_failures_per_ip 100000"), "respond ok")), port)
	if out, err := c.cli(testPassword+"\n", nil, "user", "add", "bob", "--cost", "4"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	bob := enroll(t, newClient(t, port), "bob")
	carol := enroll(t, newClient(t, port), "carol")

	// Traffic that writes to the database while the backup runs.
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			login(newClient(t, port), fmt.Sprintf("nobody-%d", n), "wrong")
			n++
		}
	}()
	time.Sleep(200 * time.Millisecond)
	running := c.path("running-copy.db")
	out, err := c.cli("", nil, "backup", running)
	close(stop)
	if n := <-done; n == 0 {
		t.Fatal("no traffic ran during the backup")
	}
	if err != nil {
		t.Fatalf("backup while serving: %v\n%s", err, out)
	}
	expectOutput(t, "backup", out, "Wrote a consistent copy of "+db, "key file "+db+".key")
	if info, err := os.Stat(running); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v; want 0600", err, info.Mode().Perm())
	}

	c.stop()
	stopped := c.path("stopped-copy.db")
	if out, err := c.cli("", nil, "backup", stopped, "--db", db); err != nil {
		t.Fatalf("backup with Caddy stopped: %v\n%s", err, out)
	}
	if out, err := c.cli("", nil, "backup", db, "--db", db); err == nil {
		t.Fatalf("backup onto the database itself was not refused:\n%s", out)
	}

	// Restore both copies as another server would: file and key file.
	r := newCaddy(t)
	portA, portB := freePort(t), freePort(t)
	for _, f := range []struct{ from, to string }{
		{running, r.path("a.db")}, {db + ".key", r.path("a.db.key")},
		{stopped, r.path("b.db")}, {db + ".key", r.path("b.db.key")},
	} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.start(r.caddyfile("",
		site(portA, r.keyFileBlock("a.db", []string{"carol"}), "respond ok")+
			site(portB, r.keyFileBlock("b.db", []string{"carol"}), "respond ok")), portA, portB)
	for _, p := range []int{portA, portB} {
		signIn(t, p, "bob", testPassword, bob, 1)
		signIn(t, p, "carol", testPassword, carol, 1)
	}
}

// metric returns the value of the sample named exactly series (with its
// labels) in a Prometheus text exposition.
func metric(t *testing.T, exposition, series string) string {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	t.Fatalf("no %s in the metrics:\n%s", series, exposition)
	return ""
}

func scrape(t *testing.T, c *caddyProc) string {
	t.Helper()
	resp, err := http.Get("http://" + c.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

func TestMetrics_SignInsLockoutsLocksAndEnrollments(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	block := c.totpAuth("totp.db", []string{"carol", "dave"}, "max_failures 2")
	c.start(c.caddyfile("", site(port, block, "respond ok")), port)

	loginStatus(t, port, "carol", "wrong")
	enroll(t, newClient(t, port), "carol")
	m := scrape(t, c)
	for series, want := range map[string]string{
		`caddy_totp_auth_sign_ins_total{outcome="failure"}`: "1",
		`caddy_totp_auth_sign_ins_total{outcome="ok"}`:      "1",
		`caddy_totp_auth_enrollments_total`:                 "1",
		`caddy_totp_auth_lockouts_total`:                    "0",
		`caddy_totp_auth_locked_users`:                      "0",
	} {
		if got := metric(t, m, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}

	loginStatus(t, port, "dave", "wrong")
	loginStatus(t, port, "dave", "wrong")
	if status, _ := loginStatus(t, port, "dave", testPassword); status != http.StatusTooManyRequests {
		t.Fatalf("dave after 2 failures: %d, want 429", status)
	}
	m = scrape(t, c)
	for series, want := range map[string]string{
		`caddy_totp_auth_sign_ins_total{outcome="failure"}`: "3",
		`caddy_totp_auth_sign_ins_total{outcome="locked"}`:  "1",
		`caddy_totp_auth_lockouts_total`:                    "1",
		`caddy_totp_auth_locked_users`:                      "1",
	} {
		if got := metric(t, m, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}

	// A reload keeps the counts (and registers nothing twice); an unlock
	// shows at the next scrape.
	if status, body, _ := c.reload(c.caddyfile("", site(port, block, "respond ok"))); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	if out, err := c.cli("", nil, "user", "unlock", "dave"); err != nil {
		t.Fatalf("unlock: %v\n%s", err, out)
	}
	m = scrape(t, c)
	if got := metric(t, m, "caddy_totp_auth_lockouts_total"); got != "1" {
		t.Errorf("lockouts_total after a reload = %s, want 1", got)
	}
	if got := metric(t, m, "caddy_totp_auth_locked_users"); got != "0" {
		t.Errorf("locked_users after unlock = %s, want 0", got)
	}
}

func TestAccessLog_ShowsTheSignedInUser(t *testing.T) {
	t.Parallel()
	c := newCaddy(t)
	port := freePort(t)
	logFile := c.path("access.log")
	c.start(c.caddyfile("", site(port, c.totpAuth("totp.db", []string{"carol"}),
		"log {\n\t\toutput file "+logFile+"\n\t}", "respond ok")), port)
	b := newClient(t, port)
	enroll(t, b, "carol")
	expect(t, "GET /private", b.do("GET", "/private", nil), http.StatusOK)

	var line string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(readFileIfAny(logFile), "\n") {
			if strings.Contains(l, `"uri":"/private"`) {
				line = l
			}
		}
		if line != "" {
			break
		}
	}
	if !strings.Contains(line, `"user_id":"carol"`) {
		t.Fatalf("the access log line of GET /private does not name carol:\n%s", line)
	}
}

func readFileIfAny(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func TestOperations_PasswordFromTheTerminalIsNotEchoed(t *testing.T) {
	t.Parallel()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatal("needs script(1) for a terminal: install Debian's bsdutils (util-linux elsewhere)")
	}
	c := newCaddy(t)
	port := freePort(t)
	const password = "typed at the terminal"

	// script gives the command a terminal; the test types at it.
	line := fmt.Sprintf("%s totp-auth user add erin --cost 4 --db %s --address %s", caddyBin, c.path("totp.db"), c.admin)
	cmd := exec.Command(script, "-q", "-e", "-c", line, "/dev/null")
	cmd.Env = c.env()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	screen := new(strings.Builder)
	rd := bufio.NewReader(io.TeeReader(stdout, screen))
	for _, prompt := range []string{"New password for erin: ", "Repeat it: "} {
		if err := waitFor(rd, prompt); err != nil {
			t.Fatalf("no prompt %q: %v\n%s", prompt, err, screen)
		}
		time.Sleep(100 * time.Millisecond) // the prompt comes just before echo goes off
		fmt.Fprint(stdin, password+"\r")
	}
	_, _ = io.Copy(io.Discard, rd)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("user add at a terminal: %v\n%s", err, screen)
	}
	if strings.Contains(screen.String(), password) {
		t.Fatalf("the password was echoed:\n%s", screen)
	}
	expectOutput(t, "user add at a terminal", screen.String(), "Added erin")

	c.start(c.caddyfile("", site(port, c.keyFileBlock("totp.db", nil), "respond ok")), port)
	if status, next := loginStatus(t, port, "erin", password); status != http.StatusOK || next != "enroll_required" {
		t.Fatalf("erin with the typed password: %d %s", status, next)
	}
}

// waitFor reads rd until s has been read.
func waitFor(rd *bufio.Reader, s string) error {
	var seen strings.Builder
	for !strings.HasSuffix(seen.String(), s) {
		b, err := rd.ReadByte()
		if err != nil {
			return err
		}
		seen.WriteByte(b)
	}
	return nil
}
