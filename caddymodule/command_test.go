package caddymodule

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

// pipedStdin returns a file that reads input, as a piped standard input.
func pipedStdin(t *testing.T, input string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	go func() {
		_, _ = w.WriteString(input)
		_ = w.Close()
	}()
	return r
}

func TestReadPasswordHash_FromAPipeTakesTheFirstLine(t *testing.T) {
	for input, want := range map[string]string{
		"secret one\n":         "secret one",
		"secret two\r\nmore\n": "secret two",
		"no newline":           "no newline",
		"  spaces kept  \n":    "  spaces kept  ",
	} {
		o := &options{in: pipedStdin(t, input), errOut: new(bytes.Buffer)}
		hash, err := o.readPasswordHash("bob", bcrypt.MinCost)
		if err != nil {
			t.Fatalf("%q: %v", input, err)
		}
		if bcrypt.CompareHashAndPassword(hash, []byte(want)) != nil {
			t.Errorf("%q: the hash is not of %q", input, want)
		}
	}
}

func TestReadPasswordHash_RefusesEmptyAndOverlongPasswords(t *testing.T) {
	for input, want := range map[string]string{
		"\n":                           "empty",
		"":                             "empty",
		strings.Repeat("x", 73) + "\n": "longer than 72 bytes",
	} {
		o := &options{in: pipedStdin(t, input), errOut: new(bytes.Buffer)}
		if _, err := o.readPasswordHash("bob", bcrypt.MinCost); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", input, err, want)
		}
	}
	o := &options{in: pipedStdin(t, "pw\n")}
	if _, err := o.readPasswordHash("bob", 3); err == nil || !strings.Contains(err.Error(), "--cost") {
		t.Errorf("cost 3: err = %v", err)
	}
}

func TestReadPasswordHash_RefusesPasswordsUnderEightCharactersAndSaysWhy(t *testing.T) {
	for _, input := range []string{"x", "pw", "1234567", "ééééééé"} { // é is two bytes: characters count
		o := &options{in: pipedStdin(t, input+"\n"), errOut: new(bytes.Buffer)}
		_, err := o.readPasswordHash("bob", bcrypt.MinCost)
		if err == nil || !strings.Contains(err.Error(), "shorter than 8 characters") || !strings.Contains(err.Error(), "choose a longer one") {
			t.Errorf("%q: err = %v, want a refusal that says why", input, err)
		}
	}
	for _, input := range []string{"84kq2zvm", "éééééééé"} {
		o := &options{in: pipedStdin(t, input+"\n"), errOut: new(bytes.Buffer)}
		if _, err := o.readPasswordHash("bob", bcrypt.MinCost); err != nil {
			t.Errorf("%q (8 characters): %v", input, err)
		}
	}
}

func TestReadPasswordHash_RefusesTheMostCommonPasswordsAndSaysWhy(t *testing.T) {
	for _, input := range []string{"password", "Password1", "qwertyuiop", "sunshine", "bob.builder"} {
		o := &options{in: pipedStdin(t, input+"\n"), errOut: new(bytes.Buffer)}
		_, err := o.readPasswordHash("Bob.Builder", bcrypt.MinCost)
		if err == nil || !strings.Contains(err.Error(), "choose") || !strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("%q: err = %v, want a refusal that says why", input, err)
		}
	}
}

func TestCommands_HelpNamesTheConfigFlagsValueAFile(t *testing.T) {
	root := newCommandTree()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if help := out.String(); !strings.Contains(help, "-c, --config file ") || strings.Contains(help, "--config user") {
		t.Errorf("help shows the config flag wrongly:\n%s", help)
	}
}

// The commands that set a password hash at --cost, 14 unless given, as
// `caddy hash-password` does; the hash is made at the cost asked for.
func TestReadPasswordHash_DefaultCostIsWhatCaddyHashPasswordUses(t *testing.T) {
	root := newCommandTree()
	for _, path := range [][]string{{"user", "add"}, {"user", "passwd"}} {
		cmd, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		if f := cmd.Flags().Lookup("cost"); f == nil || f.DefValue != "14" {
			t.Errorf("%v: --cost flag %+v, want one defaulting to 14", path, f)
		}
	}
	o := &options{in: pipedStdin(t, "long enough password\n")}
	hash, err := o.readPasswordHash("bob", 5)
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost(hash); cost != 5 {
		t.Errorf("cost %d, want the 5 asked for", cost)
	}
}

func TestCommands_UnlockTakesANameOrAnIP(t *testing.T) {
	root := newCommandTree()
	for _, args := range [][]string{
		{"user", "unlock"},
		{"user", "unlock", "bob", "--ip", "192.0.2.1"},
		{"user", "unlock", "bob", "alice"},
	} {
		root.SetArgs(args)
		root.SetOut(new(bytes.Buffer))
		root.SetErr(new(bytes.Buffer))
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "either a user name or --ip") {
			t.Errorf("%v: err = %v", args, err)
		}
	}
}

func TestCommands_EveryOperationIsThere(t *testing.T) {
	root := newCommandTree()
	for _, path := range [][]string{
		{"user", "add"}, {"user", "passwd"}, {"user", "remove"}, {"user", "list"},
		{"user", "reset-2fa"}, {"user", "unlock"}, {"rotate-key"}, {"backup"},
	} {
		cmd, rest, err := root.Find(path)
		if err != nil || len(rest) != 0 || cmd.Name() != path[len(path)-1] || cmd.Short == "" {
			t.Errorf("%v: %v (rest %v)", path, err, rest)
		}
	}
}

// newCommandTree builds the totp-auth command as Caddy's CLI does.
func newCommandTree() *cobra.Command {
	root := &cobra.Command{Use: "totp-auth", SilenceUsage: true, SilenceErrors: true}
	addCommands(root)
	return root
}

func TestConfiguredDatabases_FindsEveryTOTPAuthHandler(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	cfg := `{"apps":{"http":{"servers":{"srv0":{"routes":[
		{"handle":[{"handler":"subroute","routes":[{"handle":[
			{"handler":"totp_auth","db_path":"/srv/a.db","encryption_key":"{env.KEY}","old_encryption_keys":["` + key64 + `"],"users":{"Carol":"` + bcryptHash + `"}},
			{"handler":"reverse_proxy"}]}]}]},
		{"handle":[{"handler":"totp_auth","db_path":"/srv/a.db","users":{"dave":"` + bcryptHash + `"}}]},
		{"handle":[{"handler":"totp_auth"}]}
	]}}}}}`
	dbs, err := configuredDatabases([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if len(dbs) != 2 {
		t.Fatalf("found %d databases, want /srv/a.db and the default: %+v", len(dbs), dbs)
	}
	a := dbs[0]
	if a.path != "/srv/a.db" || a.keys.current != "{env.KEY}" || len(a.keys.old) != 1 || !a.users["carol"] || !a.users["dave"] {
		t.Errorf("/srv/a.db = %+v, want its key settings and the users of both handlers", a)
	}
	if dbs[1].path != defaultDBPath() || len(dbs[1].users) != 0 {
		t.Errorf("second database = %+v, want the default path", dbs[1])
	}
}
