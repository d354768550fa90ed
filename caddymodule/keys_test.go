package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/storage"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// keyFileDatabase creates a database whose key is in the key file beside
// it, with bob enrolled, and closes it.
func keyFileDatabase(t *testing.T) (dbPath string, key secrets.Key) {
	t.Helper()
	dbPath = filepath.Join(t.TempDir(), "totp.db")
	ks, err := keySource{}.resolve(caddy.NewReplacer(), dbPath, true, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	d, err := openDatabaseFile(dbPath, ks, time.Second, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	d.holdForCommand(holder{keyFile: ks.file, noConfig: true})
	if _, err := d.users().Add("bob", mustHash(t, "pw")); err != nil {
		t.Fatal(err)
	}
	enrollUser(t, d, "bob")
	if err := d.db.Close(); err != nil {
		t.Fatal(err)
	}
	return dbPath, ks.current()
}

// startsAndDecrypts opens the database as Caddy's start does, from the
// key files, and checks that bob's TOTP secret decrypts.
func startsAndDecrypts(t *testing.T, dbPath string) {
	t.Helper()
	ks, err := keySource{}.resolve(caddy.NewReplacer(), dbPath, false, zap.NewNop())
	if err != nil {
		t.Fatalf("read the keys: %v", err)
	}
	d, err := openDatabaseFile(dbPath, ks, time.Second, zap.NewNop())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer d.db.Close()
	acct, err := d.db.Account("bob")
	if err != nil || acct.TOTPSecret != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("bob's secret after opening: %q, %v", acct.TOTPSecret, err)
	}
}

func opensWith(dbPath string, keys ...secrets.Key) error {
	db, err := storage.Open(dbPath, storage.Options{Keys: keys, LockTimeout: time.Second})
	if err == nil {
		err = db.Close()
	}
	return err
}

func TestRotateKey_KeyFileRotationCanBeInterruptedAtAnyStep(t *testing.T) {
	newKey, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	// The states rotateKey passes through, each as a crash would leave it.
	steps := []struct {
		name  string
		crash func(t *testing.T, dbPath string, old secrets.Key)
	}{
		{"after keeping the old key under its id", func(t *testing.T, dbPath string, old secrets.Key) {
			if err := replaceKeyFile(retiredKeyFile(defaultKeyFile(dbPath), old), old); err != nil {
				t.Fatal(err)
			}
		}},
		{"after writing the new key, before the transaction", func(t *testing.T, dbPath string, old secrets.Key) {
			if err := replaceKeyFile(retiredKeyFile(defaultKeyFile(dbPath), old), old); err != nil {
				t.Fatal(err)
			}
			if err := replaceKeyFile(defaultKeyFile(dbPath), newKey); err != nil {
				t.Fatal(err)
			}
		}},
		{"after the transaction", func(t *testing.T, dbPath string, _ secrets.Key) {
			ks, err := keySource{}.resolve(caddy.NewReplacer(), dbPath, false, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			d, err := openDatabaseFile(dbPath, ks, time.Second, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			d.holdForCommand(holder{keyFile: ks.file, noConfig: true})
			r, err := d.rotateKey()
			if err != nil || !r.Rotated {
				t.Fatalf("rotateKey = %+v, %v", r, err)
			}
			if err := d.db.Close(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			dbPath, old := keyFileDatabase(t)
			step.crash(t, dbPath, old)
			startsAndDecrypts(t, dbPath)
			current, err := readKeyFile(defaultKeyFile(dbPath))
			if err != nil {
				t.Fatal(err)
			}
			if current != old {
				// Once the key file holds the new key, the start has
				// re-encrypted: the old key alone opens nothing.
				if err := opensWith(dbPath, old); err == nil || !strings.Contains(err.Error(), "encrypted under key id") {
					t.Errorf("the old key alone still opens the database: %v", err)
				}
			}
		})
	}
}

func TestRotateKey_KeepsEveryRetiredKeyByItsIDAndSaysWhichBackupsNeedIt(t *testing.T) {
	dbPath, first := keyFileDatabase(t)
	keyFile := defaultKeyFile(dbPath)
	backup := func(name string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), name)
		src, err := os.ReadFile(dbPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, src, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := backup("before-first.db") // Caddy is stopped: a copy of the file is a backup
	h := &TOTPAuth{DBPath: dbPath}
	mustProvision(t, h)
	r1, err := h.db.rotateKey()
	if err != nil || !r1.Rotated || r1.OldKeyID != first.ID() || r1.KeyID == first.ID() {
		t.Fatalf("first rotateKey = %+v, %v", r1, err)
	}
	r2, err := h.db.rotateKey()
	if err != nil || !r2.Rotated || r2.OldKeyID != r1.KeyID {
		t.Fatalf("second rotateKey = %+v, %v", r2, err)
	}
	// The running handler decrypts under the newest key at once.
	if acct, err := h.db.db.Account("bob"); err != nil || acct.TOTPSecret == "" {
		t.Fatalf("bob after rotation: %+v, %v", acct, err)
	}
	for _, want := range []string{
		"from now on, key " + r2.KeyID + " in " + keyFile,
		"made before now",
		"key " + r1.KeyID + " in " + keyFile + "." + r1.KeyID,
		"key " + first.ID() + " in " + keyFile + "." + first.ID(),
	} {
		if !strings.Contains(r2.Message, want) {
			t.Errorf("the second rotation's message lacks %q:\n%s", want, r2.Message)
		}
	}
	if strings.Contains(r2.Message, "\n") {
		t.Errorf("message %q is not one line", r2.Message)
	}
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}

	// A start keeps them all; the backup from before the first rotation
	// opens with the first key, still there under its id.
	mustProvision(t, &TOTPAuth{DBPath: dbPath})
	kept, err := readKeyFile(keyFile + "." + first.ID())
	if err != nil || kept != first {
		t.Fatalf("%s.%s holds %v, %v; want the first key", keyFile, first.ID(), kept, err)
	}
	if _, err := readKeyFile(keyFile + "." + r1.KeyID); err != nil {
		t.Fatalf("the second key is gone: %v", err)
	}
	if err := opensWith(before, kept); err != nil {
		t.Fatalf("the backup from before the first rotation does not open with the kept key: %v", err)
	}
}

func TestRotateKey_AStartKeepsALegacyOldKeyUnderItsID(t *testing.T) {
	dbPath, key := keyFileDatabase(t)
	keyFile := defaultKeyFile(dbPath)
	older, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := replaceKeyFile(legacyOldKeyFile(keyFile), older); err != nil {
		t.Fatal(err)
	}
	h := &TOTPAuth{DBPath: dbPath}
	mustProvision(t, h)
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(legacyOldKeyFile(keyFile)); !os.IsNotExist(err) {
		t.Errorf(".old is still there: %v", err)
	}
	if kept, err := readKeyFile(retiredKeyFile(keyFile, older)); err != nil || kept != older {
		t.Errorf("the .old key was not kept under its id: %v, %v", kept, err)
	}
	if current, _ := readKeyFile(keyFile); current != key {
		t.Error("the current key changed")
	}
}

func TestRotateKey_ConfiguredKeyIsLeftToTheConfiguration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "totp.db")
	h := &TOTPAuth{DBPath: path, EncryptionKey: key64}
	mustProvision(t, h)
	r, err := h.db.rotateKey()
	if err != nil || r.Rotated {
		t.Fatalf("rotateKey = %+v, %v; want nothing rotated", r, err)
	}
	steps := rotationSteps(path, r.OldKeyID, key64b)
	for _, want := range []string{"Nothing was changed", "encryption_key      " + key64b, "old_encryption_keys", "caddy reload", r.OldKeyID} {
		if !strings.Contains(steps, want) {
			t.Errorf("steps lack %q:\n%s", want, steps)
		}
	}
	if _, err := os.Stat(defaultKeyFile(path)); !os.IsNotExist(err) {
		t.Error("a key file appeared beside a database with a configured key")
	}
}

func TestReload_NewKeyWithTheOldOneListedReencryptsTheOpenDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "totp.db")
	old := &TOTPAuth{DBPath: path, EncryptionKey: key64}
	mustProvision(t, old)
	if _, err := old.db.users().Add("bob", mustHash(t, "pw")); err != nil {
		t.Fatal(err)
	}
	enrollUser(t, old.db, "bob")

	// A reload provisions the new configuration while the old one holds
	// the database.
	replacement := &TOTPAuth{DBPath: path, EncryptionKey: key64b, OldEncryptionKeys: []string{key64}}
	mustProvision(t, replacement)
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	// A site block that still names only the old key is refused now.
	err := provision(t, &TOTPAuth{DBPath: path, EncryptionKey: key64})
	if err == nil || !strings.Contains(err.Error(), "old_encryption_keys") {
		t.Errorf("old key alone on the re-encrypted database: %v, want a refusal naming old_encryption_keys", err)
	}
	if err := replacement.Cleanup(); err != nil {
		t.Fatal(err)
	}

	oldKey, _ := secrets.ParseKey(key64)
	newKey, _ := secrets.ParseKey(key64b)
	if err := opensWith(path, oldKey); err == nil {
		t.Error("the old key alone still opens the database")
	}
	if err := opensWith(path, newKey); err != nil {
		t.Errorf("the new key alone does not open the database: %v", err)
	}
}

func TestKeySource_OldKeysAreAcceptedOnceEach(t *testing.T) {
	t.Setenv("TOTP_AUTH_TEST_OLD", key64b)
	ks, err := keySource{current: key64, old: []string{"{env.TOTP_AUTH_TEST_OLD}", key64, key64b}}.
		resolve(caddy.NewReplacer(), filepath.Join(t.TempDir(), "totp.db"), true, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := secrets.ParseKey(key64)
	prev, _ := secrets.ParseKey(key64b)
	if len(ks.keys) != 2 || ks.keys[0] != cur || ks.keys[1] != prev || ks.file != "" {
		t.Errorf("keys = %v (file %q), want the current key then the old one, once each", ks.keys, ks.file)
	}
	_, err = keySource{current: key64, old: []string{"{env.TOTP_AUTH_TEST_UNSET}"}}.
		resolve(caddy.NewReplacer(), filepath.Join(t.TempDir(), "totp.db"), true, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "old_encryption_keys (value 1)") {
		t.Errorf("unset old key: %v, want an error naming it", err)
	}
}

func TestPruneWindow_IsTheLongestLockoutOfTheHolders(t *testing.T) {
	d := offlineDatabase(t)
	if w := d.pruneWindow(); w != gateway.DefaultLockout {
		t.Errorf("window without lockouts = %s, want the default", w)
	}
	_ = d.hold(new(TOTPAuth), holder{lockout: time.Hour})
	_ = d.hold(new(TOTPAuth), holder{lockout: time.Minute})
	if w := d.pruneWindow(); w != time.Hour {
		t.Errorf("window = %s, want 1h", w)
	}
}
