package caddymodule

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/storage"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "totp-auth",
		Usage: "user|rotate-key|backup ...",
		Short: "Manages totp_auth users, encryption keys and backups",
		Long: `
Manages the users, the encryption key and the backups of a totp_auth
database. While Caddy runs, the commands ask it through its admin API
(bbolt lets only one process open the file); when Caddy is stopped, they
open the database file themselves. Either way you type the same command.

  caddy totp-auth user add <name>         add a user (asks for the password)
  caddy totp-auth user passwd <name>      change a user's password
  caddy totp-auth user remove <name>      remove a user
  caddy totp-auth user list               users, 2FA, backup codes, locks
  caddy totp-auth user reset-2fa <name>   make a user enroll 2FA again
  caddy totp-auth user unlock <name>      lift a lockout (--ip for a client IP)
  caddy totp-auth rotate-key              re-encrypt secrets under a new key
  caddy totp-auth backup <file>           write a consistent copy of the database

--config names Caddy's configuration, as for caddy reload: the commands
read the admin endpoint, the database, its key and the users of its
` + "`user`" + ` lines from it, so they work the same whether Caddy runs or not.
Without it, --address gives the admin endpoint (default: CADDY_ADMIN or
localhost:2019), --db the database (default: the one the running Caddy has
open, or <caddy data dir>/totp_auth/totp.db), and --key or TOTP_AUTH_KEY
the key when Caddy is stopped and the key is not in the key file beside
the database.`,
		CobraFunc: addCommands,
	})
}

// options are the flags every totp-auth command takes.
type options struct {
	db, address, config, adapter, key string
	out, errOut                       io.Writer
	in                                *os.File
}

func addCommands(root *cobra.Command) {
	o := &options{}
	root.PersistentFlags().StringVar(&o.db, "db", "", "the database file (default: the one Caddy has open, or <caddy data dir>/totp_auth/totp.db)")
	root.PersistentFlags().StringVar(&o.address, "address", "", "the address of Caddy's admin endpoint (default: from --config, CADDY_ADMIN or localhost:2019)")
	root.PersistentFlags().StringVarP(&o.config, "config", "c", "", "Caddy's configuration `file`, to read the admin endpoint, the database, its key and the user lines from")
	root.PersistentFlags().StringVarP(&o.adapter, "adapter", "a", "", "the adapter of --config")
	root.PersistentFlags().StringVar(&o.key, "key", "", "when Caddy is not running: the encryption_key, in hex or as a placeholder such as {file./etc/caddy/totp.key} (default: from --config, else $TOTP_AUTH_KEY, else the key file beside the database)")
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) {
		o.out, o.errOut, o.in = cmd.OutOrStdout(), cmd.ErrOrStderr(), os.Stdin
	}

	user := &cobra.Command{
		Use:   "user",
		Short: "Manages the users of a totp_auth database",
	}
	root.AddCommand(user)

	var cost int
	add := &cobra.Command{
		Use:   "add <name>",
		Short: "Adds a user with a password; they set up 2FA at their first sign-in",
		Long: `Adds a user to the database. The password is read from the terminal
without echo (twice), or from the first line of standard input when it is
piped, and stored as a bcrypt hash. The user sets up their authenticator
app at their first sign-in. A name that a ` + "`user`" + ` line in the Caddyfile
defines is refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return o.changePassword("users/add", args[0], cost, true, (*database).addUser)
		},
	}
	add.Flags().IntVar(&cost, "cost", defaultBcryptCost, "bcrypt cost of the password hash")
	passwd := &cobra.Command{
		Use:   "passwd <name>",
		Short: "Changes a user's password and signs them out everywhere",
		Long: `Changes the password of a user in the database, read like ` + "`user add`" + ` reads
it, and ends all their sessions. Users defined by a ` + "`user`" + ` line in the
Caddyfile change their password there.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return o.changePassword("users/passwd", args[0], cost, false, (*database).setPassword)
		},
	}
	passwd.Flags().IntVar(&cost, "cost", defaultBcryptCost, "bcrypt cost of the password hash")
	remove := &cobra.Command{
		Use:   "remove <name>",
		Short: "Removes a user and everything stored about them",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return o.change("users/remove", adminRequest{User: args[0]}, false,
				func(d *database) (opReport, error) { return d.removeUser(args[0]) })
		},
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "Lists users: where they are defined, 2FA, backup codes left, locks",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return o.list(asJSON) },
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the listing as JSON")
	reset := &cobra.Command{
		Use:   "reset-2fa <name>",
		Short: "Removes a user's authenticator and backup codes; their next sign-in enrolls again",
		Long: `Removes a user's TOTP secret and backup codes and ends their sessions.
Their next sign-in, with their password, sets up a new authenticator app.
This is how a user who lost their phone and their backup codes gets back in.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return o.change("users/reset-2fa", adminRequest{User: args[0]}, false,
				func(d *database) (opReport, error) { return d.resetTwoFactor(args[0], time.Now()) })
		},
	}
	var ip string
	unlock := &cobra.Command{
		Use:   "unlock <name> | unlock --ip <address>",
		Short: "Lifts the lockout of a user (or of a client IP) and forgets its failed attempts",
		Args: func(_ *cobra.Command, args []string) error {
			if (ip == "" && len(args) == 1) || (ip != "" && len(args) == 0) {
				return nil
			}
			return errors.New("give either a user name or --ip <address>")
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if ip != "" {
				return o.change("users/unlock", adminRequest{IP: ip}, false,
					func(d *database) (opReport, error) { return d.unlockIP(ip, time.Now()) })
			}
			return o.change("users/unlock", adminRequest{User: args[0]}, false,
				func(d *database) (opReport, error) { return d.unlockUser(args[0], time.Now()) })
		},
	}
	unlock.Flags().StringVar(&ip, "ip", "", "unlock this client IP instead of a user")
	user.AddCommand(add, passwd, remove, list, reset, unlock)

	root.AddCommand(&cobra.Command{
		Use:   "rotate-key",
		Short: "Re-encrypts every secret under a new encryption key",
		Long: `Re-encrypts every TOTP secret and session key under a new key, in one
transaction. When the key lives in the key file beside the database (no
encryption_key in the Caddyfile), that is all: the new key goes into the
key file, the old one into <key file>.<its id>, in an order that lets a
restart at any moment open the database. Retired keys stay until you
remove them: a backup opens only with the key that was current when it
was made, and the command says which backups need which key. When the
Caddyfile names the key, nothing is changed; the command prints a new key
and how to put it into the Caddyfile, and loading that configuration
re-encrypts.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return o.rotateKey() },
	})
	root.AddCommand(&cobra.Command{
		Use:   "backup <file>",
		Short: "Writes a consistent copy of the database, also while Caddy serves",
		Long: `Writes a consistent copy of the database to <file> (- for standard output)
while it stays in use. The copy holds TOTP secrets only encrypted: keep the
encryption key too (the key file beside the database, or your
encryption_key), in another place than the copy.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return o.backup(args[0]) },
	})
}

// defaultBcryptCost is what `caddy hash-password` uses.
const defaultBcryptCost = 14

// offlineLockTimeout is how long a command waits for the database file
// when Caddy's admin endpoint did not answer.
const offlineLockTimeout = time.Second

// target is the database a command works on: through the admin API of
// the running Caddy, or opened directly.
type target struct {
	path    string
	admin   *adminClient // nil when opened directly
	offline *database
}

func (t *target) close() {
	if t.offline != nil {
		_ = t.offline.db.Close()
	}
}

// connect finds the database: the running Caddy's if it has it open,
// otherwise the file, opened directly. create lets a command make a new
// database (and key file) when there is none.
func (o *options) connect(create bool) (*target, error) {
	cfgJSON, configured, err := o.loadConfig()
	if err != nil {
		return nil, err
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(o.address, cfgJSON, o.config, o.adapter)
	if err != nil {
		return nil, err
	}
	client, err := newAdminClient(addr)
	if err != nil {
		return nil, err
	}
	var listing databasesListing
	err = client.call(http.MethodGet, "/totp-auth/databases", nil, &listing)
	running := !errors.Is(err, errAdminNotRunning)
	if err != nil && running {
		return nil, err
	}

	path := o.db
	switch {
	case path != "":
		if path, err = filepath.Abs(path); err != nil {
			return nil, err
		}
	case len(configured) == 1:
		path = configured[0].path
	case len(configured) > 1:
		return nil, fmt.Errorf("%s names several totp_auth databases; name one with --db: %s", o.config, configuredPaths(configured))
	case running && len(listing.Databases) == 1:
		path = listing.Databases[0]
	case running && len(listing.Databases) > 1:
		return nil, fmt.Errorf("the running Caddy has several totp_auth databases open; name one with --db: %s",
			strings.Join(listing.Databases, ", "))
	default:
		path = defaultDBPath()
	}
	if running {
		for _, open := range listing.Databases {
			if open == path {
				return &target{path: path, admin: client}, nil
			}
		}
	}
	var cfg *configuredDB
	for i := range configured {
		if configured[i].path == path {
			cfg = &configured[i]
		}
	}
	d, err := o.openDirectly(path, cfg, create)
	if err != nil {
		if running {
			return nil, fmt.Errorf("the Caddy at %s does not have %s open, and opening it directly failed: %w", addr, path, err)
		}
		return nil, fmt.Errorf("caddy's admin endpoint at %s does not answer, so the database was opened directly: %w", addr, err)
	}
	return &target{path: path, offline: d}, nil
}

// openDirectly opens the database file with the key from --key, the
// configuration file, TOTP_AUTH_KEY or the key file beside it, in that
// order.
func (o *options) openDirectly(path string, cfg *configuredDB, create bool) (*database, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !create {
		return nil, fmt.Errorf("there is no database at %s: give its path with --db (or the Caddyfile with --config)", path)
	}
	var src keySource
	switch {
	case o.key != "":
		src.current = o.key
	case cfg != nil && cfg.keys.current != "":
		src = cfg.keys
	default:
		src.current = os.Getenv("TOTP_AUTH_KEY")
		if cfg != nil {
			src.old = cfg.keys.old
		}
	}
	ks, err := src.resolve(caddy.NewReplacer(), path, create, caddy.Log())
	if err != nil {
		return nil, err
	}
	d, err := openDatabaseFile(path, ks, offlineLockTimeout, zap.NewNop())
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		d.holders[configFileHolder{}] = holder{users: cfg.users, keyFile: ks.file}
	} else {
		d.holders[offlineHolder{}] = holder{keyFile: ks.file}
	}
	return d, nil
}

// configuredDB is what the configuration file says about one database.
type configuredDB struct {
	path  string
	keys  keySource
	users map[string]bool
}

// loadConfig reads the configuration file given with --config, if any,
// and the databases its totp_auth handlers name.
func (o *options) loadConfig() ([]byte, []configuredDB, error) {
	if o.config == "" {
		return nil, nil, nil
	}
	cfgJSON, _, _, err := caddycmd.LoadConfig(o.config, o.adapter)
	if err != nil {
		return nil, nil, err
	}
	dbs, err := configuredDatabases(cfgJSON)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", o.config, err)
	}
	return cfgJSON, dbs, nil
}

// configuredDatabases finds the totp_auth handlers in a configuration in
// Caddy's JSON, wherever they are nested, and merges them by database.
func configuredDatabases(cfgJSON []byte) ([]configuredDB, error) {
	var tree any
	if err := json.Unmarshal(cfgJSON, &tree); err != nil {
		return nil, err
	}
	var handlers []TOTPAuth
	var walk func(v any) error
	walk = func(v any) error {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "totp_auth" {
				b, err := json.Marshal(v)
				if err != nil {
					return err
				}
				var h TOTPAuth
				if err := json.Unmarshal(b, &h); err != nil {
					return fmt.Errorf("totp_auth handler: %w", err)
				}
				handlers = append(handlers, h)
			}
			for _, child := range v {
				if err := walk(child); err != nil {
					return err
				}
			}
		case []any:
			for _, child := range v {
				if err := walk(child); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(tree); err != nil {
		return nil, err
	}

	var dbs []configuredDB
	repl := caddy.NewReplacer()
	for _, h := range handlers {
		path := repl.ReplaceKnown(h.DBPath, "")
		if path == "" {
			path = defaultDBPath()
		}
		path, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(dbs, func(d configuredDB) bool { return d.path == path })
		if i < 0 {
			dbs = append(dbs, configuredDB{path: path, keys: keySource{current: h.EncryptionKey, old: h.OldEncryptionKeys}, users: map[string]bool{}})
			i = len(dbs) - 1
		}
		for name := range h.Users {
			dbs[i].users[gateway.CanonicalUser(name)] = true
		}
	}
	return dbs, nil
}

func configuredPaths(dbs []configuredDB) string {
	s := make([]string, len(dbs))
	for i, d := range dbs {
		s[i] = d.path
	}
	return strings.Join(s, ", ")
}

// change runs an operation that changes the database and prints its report.
func (o *options) change(op string, req adminRequest, create bool, direct func(*database) (opReport, error)) error {
	t, err := o.connect(create)
	if err != nil {
		return err
	}
	defer t.close()
	return o.apply(t, op, req, direct)
}

// changePassword runs an operation that sets user's password. The
// password is asked for once the database is found, so that a database
// that cannot be reached is reported before anyone types.
func (o *options) changePassword(op, user string, cost int, create bool, direct func(*database, string, []byte) (opReport, error)) error {
	t, err := o.connect(create)
	if err != nil {
		return err
	}
	defer t.close()
	listing, err := t.users()
	if err != nil {
		return err
	}
	if err := passwordCheck(listing, op, user); err != nil {
		return err
	}
	hash, err := o.readPasswordHash(user, cost)
	if err != nil {
		return err
	}
	return o.apply(t, op, adminRequest{User: user, PasswordHash: string(hash)},
		func(d *database) (opReport, error) { return direct(d, user, hash) })
}

func (o *options) apply(t *target, op string, req adminRequest, direct func(*database) (opReport, error)) error {
	var report opReport
	var err error
	if t.admin != nil {
		req.DB = t.path
		err = t.admin.call(http.MethodPost, "/totp-auth/"+op, req, &report)
	} else {
		report, err = direct(t.offline)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(o.out, report.Message)
	return nil
}

func (o *options) list(asJSON bool) error {
	t, err := o.connect(false)
	if err != nil {
		return err
	}
	defer t.close()
	listing, err := t.users()
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(o.out)
		enc.SetIndent("", "  ")
		return enc.Encode(listing)
	}
	how := "through the running Caddy at " + t.adminAddress()
	if t.admin == nil {
		how = "read directly: Caddy is not running"
	}
	fmt.Fprintf(o.out, "Users in %s (%s):\n\n", listing.DB, how)
	printUsers(o.out, listing, time.Now())
	return nil
}

// users lists the users of the target's database.
func (t *target) users() (userListing, error) {
	if t.admin == nil {
		return t.offline.listUsers(time.Now())
	}
	var l userListing
	err := t.admin.call(http.MethodGet, "/totp-auth/users?db="+url.QueryEscape(t.path), nil, &l)
	return l, err
}

func (t *target) adminAddress() string {
	if t.admin == nil {
		return ""
	}
	return t.admin.address
}

// printUsers writes a listing as a table.
func printUsers(w io.Writer, l userListing, now time.Time) {
	if len(l.Users) == 0 {
		fmt.Fprintln(w, "No users yet: add one with `caddy totp-auth user add <name>` or a `user` line in the Caddyfile.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tSOURCE\t2FA\tBACKUP CODES\tLOCKED UNTIL")
		for _, u := range l.Users {
			twoFA, codes := "off", "-"
			switch {
			case u.TwoFactor:
				twoFA, codes = "on", fmt.Sprint(u.BackupCodesLeft)
				if u.MustRegenerate {
					codes += " (one used: new set due)"
				}
			case u.EnrollmentPending:
				twoFA = "setting up"
			}
			locked := "-"
			if u.LockedUntil != nil {
				locked = untilText(*u.LockedUntil, now)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Source, twoFA, codes, locked)
		}
		_ = tw.Flush()
	}
	if !l.SourcesKnown {
		fmt.Fprintln(w, "\nCaddy is not running, and without --config the Caddyfile is unknown here: users of `user` lines who never\n"+
			"signed in are missing, and \"Caddyfile?\" marks those whose 2FA is stored without a password.")
	}
	for _, lk := range l.LockedClientIPs {
		fmt.Fprintf(w, "\nClient IP %s is locked until %s: `caddy totp-auth user unlock --ip %s` lifts it.", lk.Name, untilText(lk.LockedUntil, now), lk.Name)
	}
	for _, lk := range l.LockedUnknownNames {
		fmt.Fprintf(w, "\nThe name %q, which is no user, is locked until %s after repeated guesses.", lk.Name, untilText(lk.LockedUntil, now))
	}
	if len(l.LockedClientIPs)+len(l.LockedUnknownNames) > 0 {
		fmt.Fprintln(w)
	}
}

func untilText(t, now time.Time) string {
	return fmt.Sprintf("%s (in %s)", formatTime(t), t.Sub(now).Round(time.Second))
}

func (o *options) rotateKey() error {
	t, err := o.connect(false)
	if err != nil {
		return err
	}
	defer t.close()
	var r rotationReport
	if t.admin != nil {
		err = t.admin.call(http.MethodPost, "/totp-auth/rotate-key", adminRequest{DB: t.path}, &r)
	} else {
		r, err = t.offline.rotateKey()
	}
	if err != nil {
		return err
	}
	if r.Rotated {
		fmt.Fprintln(o.out, r.Message)
		return nil
	}
	next, err := storage.NewKey()
	if err != nil {
		return err
	}
	fmt.Fprint(o.out, rotationSteps(r.DB, r.OldKeyID, hex.EncodeToString(next[:])))
	return nil
}

func (o *options) backup(file string) error {
	t, err := o.connect(false)
	if err != nil {
		return err
	}
	defer t.close()
	if file != "-" {
		if same(file, t.path) {
			return fmt.Errorf("%s is the database itself: write the backup to another file", file)
		}
	}
	var report backupReport
	write := func(w io.Writer) error {
		if t.admin == nil {
			report, err = t.offline.backup(w, nil)
			return err
		}
		report, err = t.admin.backup(t.path, w)
		return err
	}
	if file == "-" {
		return write(o.out)
	}
	if err := writeFileAtomically(file, write); err != nil {
		return err
	}
	where := "your encryption_key"
	if report.KeyFile != "" {
		where = "the key file " + report.KeyFile
	}
	fmt.Fprintf(o.out, "Wrote a consistent copy of %s to %s (%d bytes).\n"+
		"It opens only with the encryption key with id %s, which is %s: keep a copy of the key too, stored apart from the backup.\n"+
		"To restore: stop Caddy, copy the backup over %s, keep the key where it was, start Caddy.\n",
		report.DB, file, report.Bytes, report.KeyID, where, report.DB)
	return nil
}

// same reports whether a and b name one file.
func same(a, b string) bool {
	ai, err := os.Stat(a)
	if err != nil {
		return false
	}
	bi, err := os.Stat(b)
	return err == nil && os.SameFile(ai, bi)
}

// writeFileAtomically writes path with mode 0600 through a temporary file
// beside it, so an interrupted backup never leaves a partial file under
// the name of a good one.
func writeFileAtomically(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		err = write(tmp)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// minPasswordLength is the fewest characters a password set with `user
// add` or `user passwd` may have.
const minPasswordLength = 8

// readPasswordHash reads a new password for user and hashes it with
// bcrypt: from the terminal without echo, asked twice, or from the first
// line of standard input when that is not a terminal.
func (o *options) readPasswordHash(user string, cost int) ([]byte, error) {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("--cost must be between %d and %d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	name, err := userName(user)
	if err != nil {
		return nil, err
	}
	var password []byte
	fd := int(o.in.Fd())
	if term.IsTerminal(fd) {
		password, err = readPasswordFromTerminal(fd, o.errOut, name)
	} else {
		password, err = readLine(o.in)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case len(password) == 0:
		return nil, errors.New("the password is empty")
	case utf8.RuneCount(password) < minPasswordLength:
		return nil, fmt.Errorf("the password is shorter than %d characters, short enough to guess: choose a longer one "+
			"(a few unrelated words are easy to type and hard to guess); nothing was changed", minPasswordLength)
	case len(password) > 72:
		return nil, errors.New("the password is longer than 72 bytes, more than bcrypt uses: choose a shorter one")
	}
	hash, err := bcrypt.GenerateFromPassword(password, cost)
	if err != nil {
		return nil, fmt.Errorf("hash the password: %w", err)
	}
	return hash, nil
}

func readPasswordFromTerminal(fd int, prompt io.Writer, user string) ([]byte, error) {
	// Give the terminal its echo back if the user presses Ctrl-C.
	state, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)
	defer signal.Stop(interrupt)
	go func() {
		if _, ok := <-interrupt; ok {
			_ = term.Restore(fd, state)
			os.Exit(1)
		}
	}()

	fmt.Fprintf(prompt, "New password for %s: ", user)
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(prompt, "Repeat it: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(first, again) {
		return nil, errors.New("the two passwords differ; nothing was changed")
	}
	return first, nil
}

// readLine reads the first line of r, without its line ending.
func readLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read the password from standard input: %w", err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

// errAdminNotRunning means nothing listens at the admin address: Caddy is
// not running there.
var errAdminNotRunning = errors.New("caddy's admin endpoint does not answer")

// adminClient talks to Caddy's admin endpoint, over TCP or a unix socket.
type adminClient struct {
	address string
	origin  string
	http    *http.Client
}

func newAdminClient(address string) (*adminClient, error) {
	na, err := caddy.ParseNetworkAddress(address)
	if err != nil || na.PortRangeSize() > 1 {
		return nil, fmt.Errorf("admin address %q: give one address, such as localhost:2019 or unix//run/caddy-admin.sock", address)
	}
	network, dialAddr, origin := na.Network, na.JoinHostPort(0), "http://"+na.JoinHostPort(0)
	if na.IsUnixNetwork() {
		// A unix socket address may end in |<permissions>.
		dialAddr, _, _ = strings.Cut(na.Host, "|")
		// Caddy checks no host on a socket; this one only satisfies net/http.
		origin = "http://127.0.0.1"
	}
	dialer := &net.Dialer{Timeout: 3 * time.Second}
	return &adminClient{
		address: address,
		origin:  origin,
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, dialAddr)
			},
		}},
	}, nil
}

// request sends a request; errAdminNotRunning if nothing listens.
func (c *adminClient) request(method, uri string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.origin+uri, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Origin", c.origin)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return nil, errAdminNotRunning
	}
	if err != nil {
		return nil, fmt.Errorf("caddy's admin endpoint at %s: %w", c.address, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, c.failure(resp)
	}
	return resp, nil
}

// failure turns an error answer into the message Caddy gave.
func (c *adminClient) failure(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var apiErr struct {
		Error string `json:"error"`
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && json.Unmarshal(b, &apiErr) == nil && apiErr.Error != "" {
		return errors.New(apiErr.Error)
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("the Caddy at %s has no totp_auth admin API: is it built with the totp_auth module? (HTTP %d)", c.address, resp.StatusCode)
	}
	return fmt.Errorf("caddy's admin endpoint at %s answered HTTP %d: %s", c.address, resp.StatusCode, strings.TrimSpace(string(b)))
}

// call sends a request and decodes the JSON answer into out.
func (c *adminClient) call(method, uri string, body, out any) error {
	resp, err := c.request(method, uri, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("caddy's admin endpoint at %s: unexpected answer: %w", c.address, err)
	}
	return nil
}

// backup streams the database's copy to w and checks that it arrived
// whole.
func (c *adminClient) backup(db string, w io.Writer) (backupReport, error) {
	resp, err := c.request(http.MethodPost, "/totp-auth/backup", adminRequest{DB: db})
	if err != nil {
		return backupReport{}, err
	}
	defer resp.Body.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, sum), resp.Body)
	if err != nil {
		return backupReport{}, fmt.Errorf("receive the backup: %w", err)
	}
	want := resp.Trailer.Get(backupDigestTrailer)
	if want == "" {
		return backupReport{}, errors.New("the backup was cut short: Caddy reported an error while writing it (see its log); nothing was written")
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != want {
		return backupReport{}, errors.New("the backup arrived damaged (its checksum differs); nothing was written")
	}
	return backupReport{
		DB:      db,
		Bytes:   n,
		KeyID:   resp.Header.Get(backupKeyIDHeader),
		KeyFile: resp.Header.Get(backupKeyFileHeader),
	}, nil
}
