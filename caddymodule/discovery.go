package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddyserver/caddy/v2"
	"github.com/totp-auth/totp_auth/gateway"
	"go.uber.org/zap"
)

// This file finds the database a command works on: the running Caddy's,
// or the file named by --db or the configuration, opened directly.

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
	if t, ok, err := o.connectPostgres(configured); ok {
		return t, err
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
	err = client.call(http.MethodGet, routeDatabases.path(), nil, &listing)
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

// keySource is where a command takes the database key from: --key, the
// configuration, or TOTP_AUTH_KEY, in that order. Keys the configuration
// names as old stay accepted whichever supplies the current one, unless
// --key does.
func (o *options) keySource(cfg *configuredDB) keySource {
	var src keySource
	switch {
	case o.key != "":
		src.current = o.key
	case cfg != nil && cfg.keys.current != "":
		src = cfg.keys
	default:
		src.current = os.Getenv(envKey)
		if cfg != nil {
			src.old = cfg.keys.old
		}
	}
	return src
}

// openDirectly opens the database file with the key from --key, the
// configuration file, TOTP_AUTH_KEY or the key file beside it, in that
// order.
func (o *options) openDirectly(path string, cfg *configuredDB, create bool) (*database, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !create {
		return nil, fmt.Errorf("there is no database at %s: give its path with --db (or the Caddyfile with --config)", path)
	}
	src := o.keySource(cfg)
	ks, err := src.resolve(caddy.NewReplacer(), path, create, caddy.Log())
	if err != nil {
		return nil, err
	}
	d, err := openDatabaseFile(path, ks, offlineLockTimeout, zap.NewNop())
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		d.holdForCommand(holder{users: cfg.users, keyFile: ks.file})
	} else {
		d.holdForCommand(holder{keyFile: ks.file, noConfig: true})
	}
	return d, nil
}

// configuredDB is what the configuration file says about one database.
type configuredDB struct {
	// path is the bbolt file, or the name of a PostgreSQL database.
	path string
	// postgres is the connection string of a PostgreSQL database.
	postgres string
	keys     keySource
	users    map[string]bool
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
		if h.Postgres != "" {
			pg := configuredPostgres(h, repl)
			i := slices.IndexFunc(dbs, func(d configuredDB) bool { return d.postgres == pg.postgres })
			if i < 0 {
				dbs = append(dbs, pg)
				i = len(dbs) - 1
			}
			for name := range h.Users {
				dbs[i].users[gateway.CanonicalUser(name)] = true
			}
			continue
		}
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
