package caddymodule

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/storage"
)

// keySet is what a database may be opened with: the current key first,
// then the older keys still accepted, and where the current key came from.
type keySet struct {
	keys []storage.Key
	// file is the key file the current key was read from; "" when the
	// configuration names the key.
	file string
}

func (ks keySet) current() storage.Key { return ks.keys[0] }

// accepts reports whether k is among the keys, current or older.
func (ks keySet) accepts(k storage.Key) bool {
	for _, have := range ks.keys {
		if have == k {
			return true
		}
	}
	return false
}

// add appends k unless it is already there: a key listed twice (the same
// key as encryption_key and in old_encryption_keys, or a key file and its
// .old copy after an interrupted rotation) is harmless, not an error.
func (ks *keySet) add(k storage.Key) {
	if !ks.accepts(k) {
		ks.keys = append(ks.keys, k)
	}
}

// oldKeyFile is where a rotation keeps the key it replaced, so that a
// restart before the rotation's transaction commits still opens the
// database. The next start removes it.
func oldKeyFile(keyFile string) string { return keyFile + ".old" }

// defaultKeyFile is the key file beside a database.
func defaultKeyFile(dbPath string) string { return dbPath + ".key" }

// keySource says where the keys of a database come from, before any
// placeholder is replaced.
type keySource struct {
	// current is the encryption_key setting; "" means the key file.
	current string
	// old are the old_encryption_keys settings.
	old []string
}

// resolve reads the keys. Without a configured key it reads the key file
// beside the database (and the copy of the key a rotation replaced, if
// one is left), creating the key file when create is set and neither it
// nor the database exists yet.
func (src keySource) resolve(repl *caddy.Replacer, dbPath string, create bool, logger *zap.Logger) (keySet, error) {
	var ks keySet
	if src.current != "" {
		key, err := parseConfiguredKey(repl, "encryption_key", src.current)
		if err != nil {
			return keySet{}, err
		}
		ks.keys = []storage.Key{key}
	} else {
		file := defaultKeyFile(dbPath)
		key, err := keyFromFile(file, dbPath, create, logger)
		if err != nil {
			return keySet{}, err
		}
		ks = keySet{keys: []storage.Key{key}, file: file}
		old, err := readKeyFile(oldKeyFile(file))
		switch {
		case err == nil:
			ks.add(old)
		case !errors.Is(err, fs.ErrNotExist):
			return keySet{}, err
		}
	}
	for i, s := range src.old {
		key, err := parseConfiguredKey(repl, fmt.Sprintf("old_encryption_keys (value %d)", i+1), s)
		if err != nil {
			return keySet{}, err
		}
		ks.add(key)
	}
	return ks, nil
}

func parseConfiguredKey(repl *caddy.Replacer, setting, value string) (storage.Key, error) {
	s, err := repl.ReplaceOrErr(value, true, true)
	if err != nil {
		return storage.Key{}, fmt.Errorf("%s: %w: set the environment variable or file it names, or write the key itself (64 hex digits)", setting, err)
	}
	key, err := storage.ParseKey(s)
	if err != nil {
		return storage.Key{}, fmt.Errorf("%s: %w", setting, err)
	}
	return key, nil
}

// keyFromFile returns the key in file, generating the file if neither it
// nor the database exists yet (and create is set).
func keyFromFile(file, dbPath string, create bool, logger *zap.Logger) (storage.Key, error) {
	key, err := readKeyFile(file)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if _, err := os.Stat(dbPath); err == nil {
		return storage.Key{}, fmt.Errorf("database %s exists but its key file %s is missing: restore the key file from your backup, "+
			"or set encryption_key to the key the database was written with", dbPath, file)
	}
	if !create {
		return storage.Key{}, fmt.Errorf("no database at %s (and no key file %s)", dbPath, file)
	}
	if key, err = createKeyFile(file); err != nil {
		return storage.Key{}, err
	}
	logger.Warn("generated the encryption key for TOTP secrets; back up this file together with the database, "+
		"or set encryption_key (e.g. {env.TOTP_AUTH_KEY}) to its contents",
		zap.String("key_file", file), zap.String("db_path", dbPath))
	return key, nil
}

func readKeyFile(path string) (storage.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return storage.Key{}, err
	}
	key, err := storage.ParseKey(string(b))
	if err != nil {
		return storage.Key{}, fmt.Errorf("key file %s: %w: restore it from your backup, or set encryption_key", path, err)
	}
	return key, nil
}

// createKeyFile writes a new random key to path, unless another process got
// there first, in which case that key is used. The key is written to a
// temporary file and linked into place, so path never holds a partial key.
func createKeyFile(path string) (storage.Key, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return storage.Key{}, fmt.Errorf("create the folder for key file %s: %w", path, err)
	}
	key, err := storage.NewKey()
	if err != nil {
		return storage.Key{}, err
	}
	tmp, err := writeTempKey(path, key)
	if err != nil {
		return storage.Key{}, err
	}
	defer os.Remove(tmp)
	err = os.Link(tmp, path)
	if errors.Is(err, fs.ErrExist) {
		return readKeyFile(path)
	}
	if err != nil {
		return storage.Key{}, fmt.Errorf("write key file %s: %w", path, err)
	}
	return key, syncDir(path)
}

// replaceKeyFile puts key into path atomically: a crash leaves either the
// old file or the new one, never a partial key.
func replaceKeyFile(path string, key storage.Key) error {
	tmp, err := writeTempKey(path, key)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return syncDir(path)
}

// writeTempKey writes key, synced and mode 0600, to a new file beside path
// and returns its name.
func writeTempKey(path string, key storage.Key) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return "", fmt.Errorf("write key file %s: %w", path, err)
	}
	_, err = tmp.WriteString(hex.EncodeToString(key[:]) + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("write key file %s: %w", path, err)
	}
	return tmp.Name(), nil
}

// syncDir makes a rename or link in path's folder durable. Windows has no
// such call for folders; there the rename is as durable as it gets.
func syncDir(path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync folder of %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder of %s: %w", path, err)
	}
	return nil
}
