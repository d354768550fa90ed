package caddymodule

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/totp-auth/totp_auth/storage/secrets"
	"go.uber.org/zap"
)

// keySet is what a database may be opened with: the current key first,
// then the older keys still accepted, and where the current key came from.
type keySet struct {
	keys []secrets.Key
	// file is the key file the current key was read from; "" when the
	// configuration names the key.
	file string
}

func (ks keySet) current() secrets.Key { return ks.keys[0] }

// accepts reports whether k is among the keys, current or older.
func (ks keySet) accepts(k secrets.Key) bool {
	for _, have := range ks.keys {
		if have == k {
			return true
		}
	}
	return false
}

// add appends k unless it is already there: a key listed twice (the same
// key as encryption_key and in old_encryption_keys, or a key file and its
// retired copy after an interrupted rotation) is harmless, not an error.
func (ks *keySet) add(k secrets.Key) {
	if !ks.accepts(k) {
		ks.keys = append(ks.keys, k)
	}
}

// retiredKeyFile is where a rotation keeps the key it retired, named by
// the key's id: a restart before the rotation's transaction commits still
// opens the database with it, and every backup made while it was current
// needs it, so it stays until the operator removes it.
func retiredKeyFile(keyFile string, k secrets.Key) string { return keyFile + "." + k.ID() }

// legacyOldKeyFile is where earlier versions kept the one key a rotation
// replaced; a start renames it to its retiredKeyFile.
func legacyOldKeyFile(keyFile string) string { return keyFile + ".old" }

// retiredKey is a key a rotation retired, kept beside the key file.
type retiredKey struct {
	file string
	key  secrets.Key
	// retired is when the rotation wrote the file.
	retired time.Time
}

// retiredKeys returns the keys kept beside keyFile, the most recently
// retired first: each <key file>.<id> whose key has that id, and a
// <key file>.old left by an earlier version.
func retiredKeys(keyFile string) ([]retiredKey, error) {
	names, err := filepath.Glob(keyFile + ".*")
	if err != nil {
		return nil, err
	}
	var out []retiredKey
	for _, name := range names {
		suffix := strings.TrimPrefix(name, keyFile+".")
		if name != legacyOldKeyFile(keyFile) && !isKeyID(suffix) {
			continue // a temporary file of a write in progress, or not ours
		}
		key, err := readKeyFile(name)
		if err != nil {
			return nil, err
		}
		if name != legacyOldKeyFile(keyFile) && key.ID() != suffix {
			return nil, fmt.Errorf("key file %s holds the key with id %s: rename it to %s", name, key.ID(), retiredKeyFile(keyFile, key))
		}
		info, err := os.Stat(name)
		if err != nil {
			return nil, err
		}
		out = append(out, retiredKey{file: name, key: key, retired: info.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].retired.After(out[j].retired) })
	return out, nil
}

// isKeyID reports whether s looks like a key id: hex digits.
func isKeyID(s string) bool {
	if s == "" {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

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
// beside the database (and the keys rotations retired, kept beside it),
// creating the key file when create is set and neither it
// nor the database exists yet.
func (src keySource) resolve(repl *caddy.Replacer, dbPath string, create bool, logger *zap.Logger) (keySet, error) {
	var ks keySet
	if src.current != "" {
		key, err := parseConfiguredKey(repl, "encryption_key", src.current)
		if err != nil {
			return keySet{}, err
		}
		ks.keys = []secrets.Key{key}
	} else {
		file := defaultKeyFile(dbPath)
		key, err := keyFromFile(file, dbPath, create, logger)
		if err != nil {
			return keySet{}, err
		}
		ks = keySet{keys: []secrets.Key{key}, file: file}
		retired, err := retiredKeys(file)
		if err != nil {
			return keySet{}, err
		}
		for _, r := range retired {
			ks.add(r.key)
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

func parseConfiguredKey(repl *caddy.Replacer, setting, value string) (secrets.Key, error) {
	s, err := repl.ReplaceOrErr(value, true, true)
	if err != nil {
		return secrets.Key{}, fmt.Errorf("%s: %w: set the environment variable or file it names, or write the key itself (64 hex digits)", setting, err)
	}
	key, err := secrets.ParseKey(s)
	if err != nil {
		return secrets.Key{}, fmt.Errorf("%s: %w", setting, err)
	}
	return key, nil
}

// keyFromFile returns the key in file, generating the file if neither it
// nor the database exists yet (and create is set).
func keyFromFile(file, dbPath string, create bool, logger *zap.Logger) (secrets.Key, error) {
	key, err := readKeyFile(file)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if _, err := os.Stat(dbPath); err == nil {
		return secrets.Key{}, fmt.Errorf("database %s exists but its key file %s is missing: restore the key file from your backup, "+
			"or set encryption_key to the key the database was written with", dbPath, file)
	}
	if !create {
		return secrets.Key{}, fmt.Errorf("no database at %s (and no key file %s)", dbPath, file)
	}
	if key, err = createKeyFile(file); err != nil {
		return secrets.Key{}, err
	}
	logger.Warn("generated the encryption key for TOTP secrets; back up this file together with the database, "+
		"or set encryption_key (e.g. {env.TOTP_AUTH_KEY}) to its contents",
		zap.String("key_file", file), zap.String("db_path", dbPath))
	return key, nil
}

func readKeyFile(path string) (secrets.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return secrets.Key{}, err
	}
	key, err := secrets.ParseKey(string(b))
	if err != nil {
		return secrets.Key{}, fmt.Errorf("key file %s: %w: restore it from your backup, or set encryption_key", path, err)
	}
	return key, nil
}

// createKeyFile writes a new random key to path, unless another process got
// there first, in which case that key is used. The key is written to a
// temporary file and linked into place, so path never holds a partial key.
func createKeyFile(path string) (secrets.Key, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return secrets.Key{}, fmt.Errorf("create the folder for key file %s: %w", path, err)
	}
	key, err := secrets.NewKey()
	if err != nil {
		return secrets.Key{}, err
	}
	tmp, err := writeTempKey(path, key)
	if err != nil {
		return secrets.Key{}, err
	}
	defer os.Remove(tmp)
	err = os.Link(tmp, path)
	if errors.Is(err, fs.ErrExist) {
		return readKeyFile(path)
	}
	if err != nil {
		return secrets.Key{}, fmt.Errorf("write key file %s: %w", path, err)
	}
	return key, syncDir(path)
}

// replaceKeyFile puts key into path atomically: a crash leaves either the
// old file or the new one, never a partial key.
func replaceKeyFile(path string, key secrets.Key) error {
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
func writeTempKey(path string, key secrets.Key) (string, error) {
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
