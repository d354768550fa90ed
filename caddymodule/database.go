package caddymodule

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

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
	// handlers are the site blocks using the database, each with what its
	// configuration says.
	handlers map[*TOTPAuth]holder
	// command is what a `caddy totp-auth` command that opened the
	// database itself knows of the configuration; nil inside Caddy.
	command *holder

	locks lockCache

	// stopPruning ends the loop that prunes old failure counters.
	stopPruning chan struct{}
	pruningDone chan struct{}
}

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
	return &database{path: path, db: db, logger: logger, current: ks.current(), handlers: make(map[*TOTPAuth]holder)}
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
