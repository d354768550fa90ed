package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/totp-auth/totp_auth/internal/operator"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "totp-auth",
		Usage: "user|rotate-key|backup|migrate ...",
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
  caddy totp-auth user signout <name>     end every session of a user, wherever defined
  caddy totp-auth user passkeys <name>    list a user's passkeys
  caddy totp-auth user remove-passkey <name> <id>
                                          remove one of them
  caddy totp-auth user app-passwords <name>
                                          list a user's app passwords
  caddy totp-auth user revoke-app-password <name> <id>
                                          revoke one of them
  caddy totp-auth user sessions <name>    where a user is signed in, and remembered devices
  caddy totp-auth user signout <name> --session <id>
                                          end one of those sessions
  caddy totp-auth rotate-key              re-encrypt secrets under a new key
  caddy totp-auth backup <file>           write a consistent copy of the database
  caddy totp-auth migrate --to-postgres <connection>
                                          copy the database into PostgreSQL

--config names Caddy's configuration, as for caddy reload: the commands
read the admin endpoint, the database, its key and the users of its
` + "`user`" + ` lines from it, so they work the same whether Caddy runs or not.
Without it, --address gives the admin endpoint (default: CADDY_ADMIN or
localhost:2019), --db the database (default: the one the running Caddy has
open, or <caddy data dir>/totp_auth/totp.db), and --key or TOTP_AUTH_KEY
the key when Caddy is stopped and the key is not in the key file beside
the database.

With PostgreSQL (postgres in the Caddyfile, --postgres <connection>, or
TOTP_AUTH_POSTGRES), the commands always work on the database directly,
Caddy running or not, and every running instance notices each change at
once. Keep secrets off the command line, where every local account can
read them: --postgres, --to-postgres and --key take {env.X} and {file.X}
placeholders, and a password or key written out gets a warning.

More: docs/operations.md in the totp_auth repository
(https://github.com/totp-auth/totp_auth/blob/main/docs/operations.md).`,
		CobraFunc: addCommands,
	})
}

// options are the flags every totp-auth command takes.
type options struct {
	db, address, config, adapter, key string
	postgres                          string
	out, errOut                       io.Writer
	in                                *os.File
}

func addCommands(root *cobra.Command) {
	o := &options{}
	root.PersistentFlags().StringVar(&o.db, "db", "", "the database file (default: the one Caddy has open, or <caddy data dir>/totp_auth/totp.db)")
	root.PersistentFlags().StringVar(&o.address, "address", "", "the address of Caddy's admin endpoint (default: from --config, CADDY_ADMIN or localhost:2019)")
	root.PersistentFlags().StringVarP(&o.config, "config", "c", "", "Caddy's configuration `file`, to read the admin endpoint, the database, its key and the user lines from")
	root.PersistentFlags().StringVarP(&o.adapter, "adapter", "a", "", "the adapter of --config")
	root.PersistentFlags().StringVar(&o.postgres, "postgres", "", "a PostgreSQL database (connection string or postgres:// URL, or a placeholder such as {env.TOTP_AUTH_POSTGRES} or {file.<path>}) to work on directly; running instances notice every change at once (default: from --config, else $TOTP_AUTH_POSTGRES)")
	root.PersistentFlags().StringVar(&o.key, "key", "", "when Caddy is not running: the encryption_key, as a placeholder such as {file./etc/caddy/totp.key} or {env.TOTP_AUTH_KEY} (in hex it shows in the process list) (default: from --config, else $TOTP_AUTH_KEY, else the key file beside the database)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		o.out, o.errOut, o.in = cmd.OutOrStdout(), cmd.ErrOrStderr(), os.Stdin
		// A command prints its answer and nothing else: Caddy's own log
		// lines (loading and adapting --config) are held back, never
		// written.
		caddy.BufferedLog()
		warnClearSecrets(o.errOut, map[string]string{"postgres": o.postgres}, o.key)
		var err error
		o.postgres, err = resolveFlag("postgres", o.postgres)
		return err
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
			return o.changePassword(operator.OpAddUser, args[0], cost, true, func(d *database, name string, hash []byte) (operator.Report, error) { return d.users().Add(name, hash) })
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
			return o.changePassword(operator.OpSetPassword, args[0], cost, false, func(d *database, name string, hash []byte) (operator.Report, error) {
				return d.users().ChangePassword(name, hash)
			})
		},
	}
	passwd.Flags().IntVar(&cost, "cost", defaultBcryptCost, "bcrypt cost of the password hash")
	remove := &cobra.Command{
		Use:   "remove <name>",
		Short: "Removes a user and everything stored about them",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return o.change(routeRemoveUser, adminRequest{User: args[0]}, false,
				func(d *database) (operator.Report, error) { return d.users().Remove(args[0]) })
		},
	}
	var asJSON bool
	var query operator.ListQuery
	list := &cobra.Command{
		Use:   "list",
		Short: "Lists users: where they are defined, 2FA, backup codes left, locks",
		Long: `Lists users: where they are defined, 2FA, backup codes left, locks.
--match keeps the users whose name contains the text; --limit prints one
page of at most that many users, and --after the page after a name (the
listing says which name to give when more follow).`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return o.list(asJSON, query) },
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the listing as JSON")
	list.Flags().StringVar(&query.Match, "match", "", "only users whose name contains this text")
	list.Flags().IntVar(&query.Limit, "limit", 0, fmt.Sprintf("at most this many users (1 to %d; default: every user)", maxListPage))
	list.Flags().StringVar(&query.After, "after", "", "start after this user name (the name a page before says)")
	reset := &cobra.Command{
		Use:   "reset-2fa <name>",
		Short: "Removes a user's authenticator and backup codes; their next sign-in enrolls again",
		Long: `Removes a user's TOTP secret and backup codes and ends their sessions.
Their next sign-in, with their password, sets up a new authenticator app.
This is how a user who lost their phone and their backup codes gets back in.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return o.change(routeResetTwoFactor, adminRequest{User: args[0]}, false,
				func(d *database) (operator.Report, error) { return d.users().ResetTwoFactor(args[0], time.Now()) })
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
				return o.change(routeUnlock, adminRequest{IP: ip}, false,
					func(d *database) (operator.Report, error) { return d.users().UnlockIP(ip, time.Now()) })
			}
			return o.change(routeUnlock, adminRequest{User: args[0]}, false,
				func(d *database) (operator.Report, error) { return d.users().UnlockUser(args[0], time.Now()) })
		},
	}
	unlock.Flags().StringVar(&ip, "ip", "", "unlock this client IP instead of a user")
	var session string
	signout := &cobra.Command{
		Use:   "signout <name> [--session <id>]",
		Short: "Ends every session and pending sign-in of a user, Caddyfile or database",
		Long: `Ends every session and pending sign-in of a user, on every site block
that shares the database: copies of their cookies stop working at once.
It works for users of ` + "`user`" + ` lines in the Caddyfile as for users in the
database; nothing else about the user changes. Remembered devices are
forgotten too.

With --session <id> (an ID from ` + "`caddy totp-auth user sessions <name>`" + `), only
that session ends; the others and the remembered devices stay.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if session != "" {
				return o.change(routeEndSession, adminRequest{User: args[0], Session: session}, false,
					func(d *database) (operator.Report, error) { return d.users().EndSession(args[0], session, time.Now()) })
			}
			return o.change(routeSignOut, adminRequest{User: args[0]}, false,
				func(d *database) (operator.Report, error) { return d.users().SignOut(args[0]) })
		},
	}
	appPasswords := &cobra.Command{
		Use:   "app-passwords <name>",
		Short: "Lists a user's app passwords: id, name, scope, created, last used, expiry",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return o.change(routeAppPasswords, adminRequest{User: args[0]}, false,
				func(d *database) (operator.Report, error) { return d.users().AppPasswords(args[0], time.Now()) })
		},
	}
	revokeAppPassword := &cobra.Command{
		Use:   "revoke-app-password <name> <id>",
		Short: "Revokes one of a user's app passwords, on every instance",
		Long: `Revokes the app password with this id (as ` + "`user app-passwords`" + ` lists
them): clients using it are refused from now on, on every site block and
instance that shares the database. The user's other app passwords and
sessions stay. An id that begins with "-" (made by an older release) goes
after "--", with every flag before it: revoke-app-password alice -- -tozvnWO.`,
		Args: cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			return o.change(routeRevokeAppPassword, adminRequest{User: args[0], ID: args[1]}, false,
				func(d *database) (operator.Report, error) { return d.users().RevokeAppPassword(args[0], args[1]) })
		},
	}
	signout.Flags().StringVar(&session, "session", "", "end only the session with this id")
	var sessionsJSON bool
	sessions := &cobra.Command{
		Use:   "sessions <name>",
		Short: "Lists where a user is signed in, and their remembered devices",
		Args:  cobra.ExactArgs(1),
		RunE:  func(_ *cobra.Command, args []string) error { return o.sessions(args[0], sessionsJSON) },
	}
	sessions.Flags().BoolVar(&sessionsJSON, "json", false, "print the listing as JSON")
	user.AddCommand(add, passwd, remove, list, reset, unlock, signout, sessions, appPasswords, revokeAppPassword)
	user.AddCommand(passkeyCommands(o)...)

	var toPostgres string
	migrate := &cobra.Command{
		Use:   "migrate --to-postgres <connection>",
		Short: "Copies a bbolt database into PostgreSQL, for several instances",
		Long: `Copies the bbolt database (--db, --config, or the default one) into an
empty PostgreSQL database: users keep their authenticator apps, unused
backup codes and sessions; failure counters and locks come along. Stop the
Caddy that uses the file first. The secrets stay sealed under the same
key, which then becomes encryption_key of every instance.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			warnClearSecrets(o.errOut, map[string]string{"to-postgres": toPostgres}, "")
			to, err := resolveFlag("to-postgres", toPostgres)
			if err == nil && to == "" {
				if to, err = postgresFromEnv(); err == nil && to == "" {
					err = fmt.Errorf("name the PostgreSQL database to copy into with --to-postgres '{env.%s}' (or '{file.<path>}'), or set %s", envPostgres, envPostgres)
				}
			}
			if err != nil {
				return err
			}
			return o.migrate(to)
		},
	}
	migrate.Flags().StringVar(&toPostgres, "to-postgres", "", "the PostgreSQL database to copy into: a libpq connection string or a postgres:// URL, or a placeholder such as {env.TOTP_AUTH_POSTGRES} or {file.<path>} (default: $TOTP_AUTH_POSTGRES)")
	root.AddCommand(migrate)

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
		Use:   "backup <file> | backup -",
		Short: "Writes a consistent copy of the database, also while Caddy serves",
		Long: `Writes a consistent copy of the database to <file> (- for standard output)
while it stays in use. The copy holds TOTP secrets only encrypted: keep the
encryption key too (the key file beside the database, or your
encryption_key), in another place than the copy.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New(backupUsage)
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error { return o.backup(args[0]) },
	})
}

// backupUsage answers `caddy totp-auth backup` without a file.
const backupUsage = "name the file to write the copy to, or - for standard output:\n" +
	"  caddy totp-auth backup /var/backups/totp.db\n" +
	"  caddy totp-auth backup - > totp.db   (as a user who may write there)"

// defaultBcryptCost is what `caddy hash-password` uses.
const defaultBcryptCost = 14
