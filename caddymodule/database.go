package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/operator"
	"github.com/totp-auth/totp_auth/storage"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// databases holds the open databases by absolute path. Site blocks naming
// the same db_path share one, a reload reuses the one the old
// configuration holds instead of waiting on bbolt's exclusive file lock,
// and the admin API finds them here.
var databases = caddy.NewUsagePool()

// database is one open totp_auth database with what the configurations
// that use it say about it: which users their `user` lines define, where
// the key comes from, how long their lockout window is. Handlers sharing a
// db_path share one database; the offline commands make one of their own.
type database struct {
	path   string
	db     store
	logger *zap.Logger

	// keyMu is held for writing while the key changes, and for reading
	// while a backup runs, so a backup names the key it was made under.
	keyMu sync.RWMutex
	// current is the key new secrets are sealed under.
	current secrets.Key

	mu sync.Mutex
	// holders are the handlers (and the offline command) using the database.
	holders map[any]holder

	locks lockCache

	// stopPruning ends the loop that prunes old failure counters.
	stopPruning chan struct{}
	pruningDone chan struct{}
}

// holder is what one configuration tells the database about itself.
type holder struct {
	// users are the canonical names of its `user` lines.
	users map[string]bool
	// config is the context of the configuration it belongs to; nil for
	// the commands.
	config context.Context
	// keyFile is the key file its key comes from; "" when encryption_key
	// is configured.
	keyFile string
	// lockout is its failure counting window.
	lockout time.Duration
}

// offlineHolder holds a database the `caddy totp-auth` commands opened
// themselves because Caddy is not running, without a configuration file
// to read: it knows no `user` lines.
type offlineHolder struct{}

// configFileHolder holds a database the `caddy totp-auth` commands opened
// themselves, with the settings read from the configuration file given
// with --config.
type configFileHolder struct{}

// openDatabaseFile opens the database at path with the keys in ks.
func openDatabaseFile(path string, ks keySet, lockTimeout time.Duration, logger *zap.Logger) (*database, error) {
	db, err := storage.Open(path, storage.Options{Keys: ks.keys, LockTimeout: lockTimeout})
	if err != nil {
		return nil, fmt.Errorf("totp_auth database: %w", err)
	}
	return newDatabase(path, db, ks, logger), nil
}

// newDatabase wraps an open store, named path in logs, with ks's current
// key as the one new secrets are sealed under.
func newDatabase(path string, db store, ks keySet, logger *zap.Logger) *database {
	return &database{path: path, db: db, logger: logger, current: ks.current(), holders: make(map[any]holder)}
}

// openSharedDatabase returns the open database at path from the pool, or
// opens it there. A database already open under another key is shared
// only if ks accepts that key; ks's current key then becomes the
// database's (see adopt). The caller must release its hold with
// databases.Delete(path), also when an error is returned after the
// database was found.
func openSharedDatabase(path string, ks keySet, logger *zap.Logger) (d *database, held bool, err error) {
	return shareDatabase(path, ks, logger, zap.String("db_path", path), func() (*database, error) {
		d, err := openDatabaseFile(path, ks, storage.DefaultLockTimeout, logger)
		if err != nil {
			return nil, err
		}
		d.keepRetiredKeyByID(ks)
		return d, nil
	})
}

// shareDatabase returns the database under key in databases, or the one
// open makes, which then starts pruning. A database found there takes
// ks's current key if ks accepts its own (see adopt); logged names it.
func shareDatabase(key string, ks keySet, logger *zap.Logger, logged zap.Field, open func() (*database, error)) (d *database, held bool, err error) {
	val, loaded, err := databases.LoadOrNew(key, func() (caddy.Destructor, error) {
		d, err := open()
		if err != nil {
			return nil, err
		}
		d.startPruning()
		return d, nil
	})
	if err != nil {
		return nil, false, err
	}
	d = val.(*database)
	if loaded {
		logger.Debug("sharing open database", logged)
		if err := d.adopt(ks); err != nil {
			return d, true, err
		}
	}
	return d, true, nil
}

// Destruct stops the pruning and closes the database when its last holder
// lets go.
func (d *database) Destruct() error {
	if d.stopPruning != nil {
		close(d.stopPruning)
		<-d.pruningDone
	}
	return d.db.Close()
}

// adopt makes ks's current key the database's. A configuration that
// names a new encryption_key and lists the key the open database uses in
// old_encryption_keys rotates the key by being loaded: every secret is
// re-encrypted under the new key in one transaction.
func (d *database) adopt(ks keySet) error {
	d.keyMu.Lock()
	defer d.keyMu.Unlock()
	next := ks.current()
	if next == d.current {
		return nil
	}
	if !ks.accepts(d.current) {
		return fmt.Errorf("database %s is already open with a different encryption_key "+
			"(another site block, or the configuration this one replaces, names the same db_path): "+
			"every site block that shares a db_path must use the same encryption_key; "+
			"to change the key, list the one in use (id %s) in old_encryption_keys", d.path, d.current.ID())
	}
	if err := d.db.RotateKey(next); err != nil {
		return fmt.Errorf("re-encrypt %s under the new encryption_key: %w", d.path, err)
	}
	d.logger.Info("re-encrypted every secret under the new encryption_key; the old key is no longer needed",
		zap.String("db_path", d.path), zap.String("old_key_id", d.current.ID()), zap.String("key_id", next.ID()))
	d.current = next
	return nil
}

// keepRetiredKeyByID renames the one replaced key an earlier version kept
// in <key file>.old to <key file>.<id>, where rotations now keep every key
// they retire until the operator removes it.
func (d *database) keepRetiredKeyByID(ks keySet) {
	if ks.file == "" {
		return
	}
	old := legacyOldKeyFile(ks.file)
	key, err := readKeyFile(old)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err == nil {
		err = os.Rename(old, retiredKeyFile(ks.file, key))
	}
	if err != nil {
		d.logger.Warn("could not rename the retired key to the name of its id; rename it yourself",
			zap.String("file", old), zap.Error(err))
		return
	}
	d.logger.Info("kept the retired key under its id; backups made while it was current need it",
		zap.String("file", retiredKeyFile(ks.file, key)), zap.String("key_id", key.ID()))
}

// hold records what owner's configuration says. It refuses a `user` line
// for a name the database holds a password for: one name, two passwords,
// and which one counts would depend on the configuration.
func (d *database) hold(owner any, h holder) error {
	if len(h.users) > 0 {
		accounts, err := operator.Accounts(d.db)
		if err != nil {
			return err
		}
		var both []string
		for _, a := range accounts {
			if a.HasPassword && h.users[a.Name] {
				both = append(both, a.Name)
			}
		}
		if len(both) > 0 {
			return fmt.Errorf("user %s is defined both by a `user` line in the configuration and in the database %s "+
				"(added with `caddy totp-auth user add`): keep one, either delete the `user` line "+
				"or run `caddy totp-auth user remove %s --db %s` while Caddy is stopped",
				strings.Join(both, ", "), d.path, both[0], d.path)
		}
	}
	if err := account.MarkConfigUsers(d.db, h.users); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.holders[owner] = h
	return nil
}

// settleWhenInForce waits until the configuration of config is the one
// Caddy runs (every site block of it provisioned, the one before it
// replaced), then signs out the users whose `user` lines it no longer has
// (see settle). It gives up when the configuration is unloaded first, as a
// failed load or `caddy validate` is. A reload also settles when it
// releases the configuration it replaced (see release), so a quick
// sequence of reloads misses nothing.
func (d *database) settleWhenInForce(config context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !inForce(config) {
		select {
		case <-config.Done():
			return
		case <-tick.C:
		}
	}
	d.settle(config)
}

// inForce reports whether config is the configuration Caddy runs. Site
// blocks see it with values added; its Done channel is its own.
func inForce(config context.Context) bool {
	active := caddy.ActiveContext().Context
	return active != nil && config != nil && active.Done() == config.Done()
}

// settle signs out the users whose `user` lines the configuration config,
// in force, no longer has (account.ForgetConfigUsers).
func (d *database) settle(config context.Context) {
	d.mu.Lock()
	defined := make(map[string]bool)
	found := false
	for _, h := range d.holders {
		if h.config != nil && h.config.Done() == config.Done() {
			found = true
			for u := range h.users {
				defined[u] = true
			}
		}
	}
	d.mu.Unlock()
	if !found {
		return
	}
	ended, err := account.ForgetConfigUsers(d.db, defined)
	if err != nil {
		d.logger.Error("could not sign out users whose `user` lines were removed", zap.String("db_path", d.path), zap.Error(err))
	}
	for _, name := range ended {
		d.logger.Info("signed out a user whose `user` line is gone; adding it back does not bring their sessions back",
			zap.String("user", name), zap.String("db_path", d.path))
	}
}

// release forgets owner's configuration. When a reload releases the
// configuration it replaced, the new one is in force: it settles.
func (d *database) release(owner any) {
	d.mu.Lock()
	delete(d.holders, owner)
	d.mu.Unlock()
	if active := caddy.ActiveContext().Context; active != nil {
		d.settle(active)
	}
}

// configUsers returns the names every configuration using the database
// defines with `user` lines, and whether that is known: the offline
// commands cannot see the configuration.
func (d *database) configUsers() (map[string]bool, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	users := make(map[string]bool)
	known := false
	for owner, h := range d.holders {
		if _, offline := owner.(offlineHolder); offline {
			continue
		}
		known = true
		for u := range h.users {
			users[u] = true
		}
	}
	return users, known
}

// keyFile returns the key file every holder reads the key from, or "" if
// any holder names the key in its configuration.
func (d *database) keyFile() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	file := ""
	for _, h := range d.holders {
		if h.keyFile == "" || (file != "" && h.keyFile != file) {
			return ""
		}
		file = h.keyFile
	}
	return file
}

// pruneWindow is the longest lockout window of the holders: a counter is
// pruned only once no configuration counts it any more.
func (d *database) pruneWindow() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := time.Duration(0)
	for _, h := range d.holders {
		w = max(w, h.lockout)
	}
	if w == 0 {
		w = gateway.DefaultLockout
	}
	return w
}

// startPruning deletes, once every lockout window, the failure counters
// whose window and lock are over, so that guesses at made-up user names
// do not grow the database for ever.
func (d *database) startPruning() {
	d.stopPruning = make(chan struct{})
	d.pruningDone = make(chan struct{})
	go func() {
		defer close(d.pruningDone)
		t := time.NewTimer(d.pruneWindow())
		defer t.Stop()
		for {
			select {
			case <-d.stopPruning:
				return
			case <-t.C:
			}
			window := d.pruneWindow()
			n, err := operator.PruneCounters(d.db, time.Now(), window)
			if err != nil {
				d.logger.Error("pruning old failure counters", zap.String("db_path", d.path), zap.Error(err))
			} else if n > 0 {
				d.logger.Debug("pruned old failure counters", zap.String("db_path", d.path), zap.Int("count", n))
			}
			t.Reset(window)
		}
	}()
}

// lockCache keeps the number of active locks between scrapes of the
// metrics. It is exact: every lock and unlock in this process invalidates
// it, and it expires when the first lock it counted ends.
type lockCache struct {
	mu         sync.Mutex
	generation uint64 // raised by every invalidation
	valid      bool
	expires    time.Time
	users, ips int
}

// lockCacheTTL bounds how long a count is reused even so.
const lockCacheTTL = time.Minute

// invalidateLocks is called after a lock is taken or lifted.
func (d *database) invalidateLocks() {
	d.locks.mu.Lock()
	defer d.locks.mu.Unlock()
	d.locks.generation++
	d.locks.valid = false
}

// lockCounts returns how many users and client IPs are locked at now.
func (d *database) lockCounts(now time.Time) (users, ips int, err error) {
	c := &d.locks
	c.mu.Lock()
	if c.valid && now.Before(c.expires) {
		users, ips = c.users, c.ips
		c.mu.Unlock()
		return users, ips, nil
	}
	gen := c.generation
	c.mu.Unlock()

	locks, err := operator.Locks(d.db, now)
	if err != nil {
		return 0, 0, err
	}
	expires := now.Add(lockCacheTTL)
	for _, l := range locks {
		if _, ok := account.UserCounter.Name(l.Key); ok {
			users++
		} else if _, ok := account.IPCounter.Name(l.Key); ok {
			ips++
		}
		if end := now.Add(l.RetryAfter); end.Before(expires) {
			expires = end
		}
	}
	c.mu.Lock()
	if c.generation == gen {
		c.valid, c.expires, c.users, c.ips = true, expires, users, ips
	}
	c.mu.Unlock()
	return users, ips, nil
}

// openDatabases returns the databases open in this process, by path.
func openDatabases() []*database {
	var list []*database
	databases.Range(func(_, v any) bool {
		if d, ok := v.(*database); ok {
			list = append(list, d)
		}
		return true
	})
	sort.Slice(list, func(i, j int) bool { return list[i].path < list[j].path })
	return list
}

// Interface guards
var (
	_ caddy.Destructor = (*database)(nil)
)

// users is the operator's view of the database (package operator).
func (d *database) users() *operator.Users {
	return &operator.Users{Store: d.db, DB: d.path, ConfigUsers: d.configUsers, LocksChanged: d.invalidateLocks}
}
