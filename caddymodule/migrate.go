package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/postgres"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// errNoSessionKeys stops SessionKeys from storing keys in a database that
// has none.
var errNoSessionKeys = errors.New("the database has no session keys")

// migrate copies the bbolt database the other commands would work on into
// the empty PostgreSQL database at to: accounts with their authenticators,
// unused backup codes and session generations, the generations of removed
// users, pending enrollments,
// revocations, failure counters and the session keys (so nobody is signed
// out). Secrets move still sealed under the same key, re-encrypted only as
// PostgreSQL's rows need. Caddy must not hold the file meanwhile.
func (o *options) migrate(to string) error {
	if o.postgres != "" {
		return errors.New("migrate copies a bbolt database: name it with --db or --config, and the PostgreSQL database with --to-postgres")
	}
	_, configured, err := o.loadConfig()
	if err != nil {
		return err
	}
	var cfg *configuredDB
	path := o.db
	switch {
	case path != "":
		if path, err = filepath.Abs(path); err != nil {
			return err
		}
	default:
		var files []configuredDB
		for _, c := range configured {
			if c.postgres == "" {
				files = append(files, c)
			}
		}
		switch len(files) {
		case 0:
			path = defaultDBPath()
		case 1:
			path = files[0].path
		default:
			return fmt.Errorf("%s names several totp_auth databases; name one with --db: %s", o.config, configuredPaths(files))
		}
	}
	for i := range configured {
		if configured[i].path == path {
			cfg = &configured[i]
		}
	}
	src, err := o.openDirectly(path, cfg, false)
	if err != nil {
		return fmt.Errorf("open %s to copy it (stop the Caddy that uses it first): %w", path, err)
	}
	defer src.db.Close()

	name := postgres.Describe(to)
	if name == "" {
		return errors.New("--to-postgres: the connection string does not parse: write it as a libpq keyword/value string or a postgres:// URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), postgresOpenTimeout)
	defer cancel()
	dst, err := postgres.Open(ctx, to, postgres.Options{Keys: []secrets.Key{src.current}})
	if err != nil {
		return err
	}
	defer dst.Close()
	copied, err := copyStore(src.db, dst)
	if err != nil {
		return fmt.Errorf("copy %s into %s: %w", path, name, err)
	}
	key, keyNote := "{env.TOTP_AUTH_KEY}", fmt.Sprintf("TOTP_AUTH_KEY the key this database has now (id %s)", src.current.ID())
	if f := src.keyFile(); f != "" {
		key, keyNote = "{file."+f+"}", "the key file readable by Caddy on every instance"
	}
	fmt.Fprintf(o.out, "Copied %s into %s: %s. Users keep their authenticator apps, unused backup codes and sessions.\n"+
		"In every instance's totp_auth block, put these two lines in place of db_path, with TOTP_AUTH_POSTGRES the connection string "+
		"in Caddy's environment, and %s:\n\n\tpostgres       {env.TOTP_AUTH_POSTGRES}\n\tencryption_key %s\n",
		path, name, copied, keyNote, key)
	return nil
}

// removedLister is a store that keeps the generations of removed users
// apart from its accounts (the bbolt file does).
type removedLister interface {
	Removed() ([]account.Account, error)
}

// copyStore copies every account, the generations removed users left
// behind, every counter and the session keys from src into dst, which
// must hold no account yet, and says what it copied.
func copyStore(src, dst account.Store) (string, error) {
	existing, err := dst.Accounts()
	if err != nil {
		return "", err
	}
	if len(existing) > 0 {
		return "", fmt.Errorf("it already holds %d totp_auth accounts: migrate into an empty database (or schema)", len(existing))
	}
	list, err := src.Accounts()
	if err != nil {
		return "", err
	}
	enrolled := 0
	for _, listed := range list {
		a, err := src.Account(listed.Name)
		if err != nil {
			return "", err
		}
		if a.HasSecondFactor() {
			enrolled++
		}
		err = dst.UpdateAccount(a.Name, func(to *account.Account) error {
			*to = a
			to.Removed = false
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	removed, err := copyRemoved(src, dst)
	if err != nil {
		return "", err
	}
	counters, err := src.Counters()
	if err != nil {
		return "", err
	}
	for _, c := range counters {
		err := dst.UpdateCounters([]string{c.Key}, func(cs map[string]*account.Counter) error {
			*cs[c.Key] = c
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	keys := "no session keys (none were made yet)"
	hash, block, err := src.SessionKeys(func() ([]byte, []byte, error) { return nil, nil, errNoSessionKeys })
	switch {
	case errors.Is(err, errNoSessionKeys):
	case err != nil:
		return "", err
	default:
		if _, _, err := dst.SessionKeys(func() ([]byte, []byte, error) { return hash, block, nil }); err != nil {
			return "", err
		}
		keys = "the session keys"
	}
	return fmt.Sprintf("%d users (%d with 2FA), the generations of %d removed users, %d failure counters and %s",
		len(list), enrolled, removed, len(counters), keys), nil
}

// copyRemoved copies the generations of removed users: without them, a
// name removed before the move and added again after it would start from
// generation 0, and a session ended by `user remove` would be valid again.
func copyRemoved(src, dst account.Store) (int, error) {
	lister, ok := src.(removedLister)
	if !ok {
		return 0, nil
	}
	removed, err := lister.Removed()
	if err != nil {
		return 0, err
	}
	for _, r := range removed {
		err := dst.UpdateAccount(r.Name, func(to *account.Account) error {
			*to = account.Account{Name: r.Name, Generation: r.Generation, Removed: true}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return len(removed), nil
}
