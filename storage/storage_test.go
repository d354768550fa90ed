package storage

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/operator"
	"github.com/totp-auth/totp_auth/internal/storetest"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func mustKey(t testing.TB) secrets.Key {
	t.Helper()
	k, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "totp.db")
}

// openTest opens path and, when the test ends, checks the file's
// consistency and closes it.
func openTest(t testing.TB, path string, keys ...secrets.Key) *DB {
	t.Helper()
	db, err := Open(path, Options{Keys: keys})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		checkConsistent(t, db)
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// checkConsistent runs bbolt's own consistency check over db.
func checkConsistent(t testing.TB, db *DB) {
	t.Helper()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Errorf("consistency check of %s: %v", db.path, err)
	}
}

// enroll gives user a confirmed TOTP secret and two backup codes.
func enroll(t testing.TB, db *DB, user, secret string) {
	t.Helper()
	create := func() (account.Enrollment, error) {
		return account.Enrollment{Secret: secret, Expires: t0.Add(gateway.EnrollmentTTL)}, nil
	}
	if _, err := account.EnrollmentFor(db, user, 0, t0, create); err != nil {
		t.Fatalf("PendingEnrollment: %v", err)
	}
	if err := account.ConfirmEnrollment(db, user, secret, 100, [][]byte{[]byte("hash-1"), []byte("hash-2")}, t0); err != nil {
		t.Fatalf("ConfirmEnrollment: %v", err)
	}
}

func TestDB_PassesTheStoreConformanceSuite(t *testing.T) {
	key := mustKey(t)
	storetest.Run(t, func(t *testing.T) account.Store {
		return openTest(t, tempPath(t), key)
	})
}

func TestOpen_CreatesPrivateFileAndDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "caddy", "totp_auth", "totp.db")
	openTest(t, path, mustKey(t))
	for _, f := range []struct {
		path string
		want os.FileMode
	}{{filepath.Dir(path), 0o700}, {path, 0o600}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != f.want {
			t.Errorf("%s has mode %o, want %o", f.path, got, f.want)
		}
	}
}

func TestOpen_NamesTheHolderWhenTheFileIsLocked(t *testing.T) {
	path := tempPath(t)
	key := mustKey(t)
	openTest(t, path, key)
	// flock is per open file, so a second Open in this process waits like
	// a second process would.
	_, err := Open(path, Options{Keys: []secrets.Key{key}, LockTimeout: 50 * time.Millisecond})
	if err == nil {
		t.Fatal("second Open succeeded while the first holds the file")
	}
	for _, want := range []string{path, "another process", "Caddy", "stop it", "admin API"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestOpen_RequiresAKey(t *testing.T) {
	if _, err := Open(tempPath(t), Options{}); err == nil || !strings.Contains(err.Error(), "no encryption key") {
		t.Errorf("Open without keys = %v, want an error naming the missing key", err)
	}
}

func TestOpen_RefusesANewerSchema(t *testing.T) {
	path := tempPath(t)
	key := mustKey(t)
	db, err := Open(path, Options{Keys: []secrets.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion+1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{Keys: []secrets.Key{key}})
	if err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Errorf("Open of a newer schema = %v, want a refusal saying so", err)
	}
}

func TestOpen_WrongKeyFailsAtOpen(t *testing.T) {
	path := tempPath(t)
	right, wrong := mustKey(t), mustKey(t)
	db, err := Open(path, Options{Keys: []secrets.Key{right}})
	if err != nil {
		t.Fatal(err)
	}
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	_, err = Open(path, Options{Keys: []secrets.Key{wrong}})
	if err == nil {
		t.Fatal("Open with the wrong key succeeded")
	}
	msg := err.Error()
	for _, want := range []string{right.ID(), wrong.ID(), "encryption_key"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	for _, k := range []secrets.Key{right, wrong} {
		if strings.Contains(msg, base64.StdEncoding.EncodeToString(k[:])[:12]) || bytes.Contains([]byte(msg), k[:8]) {
			t.Errorf("error %q shows a key", msg)
		}
	}

	// The wrong attempt changed nothing: the right key still opens it.
	db = openTest(t, path, right)
	if a, err := db.Account("alice"); err != nil || a.TOTPSecret != "JBSWY3DPEHPK3PXP" {
		t.Errorf("after a wrong-key Open: Account = %v, secret kept %v", err, a.TOTPSecret == "JBSWY3DPEHPK3PXP")
	}
}

func TestOpen_RefusesACanaryThatDoesNotDecrypt(t *testing.T) {
	path := tempPath(t)
	key := mustKey(t)
	db, err := Open(path, Options{Keys: []secrets.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		c := bytes.Clone(meta.Get(keyCanary))
		c[len(c)-1] ^= 1
		return meta.Put(keyCanary, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{Keys: []secrets.Key{key}}); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Errorf("Open with a damaged canary = %v, want a refusal", err)
	}
}

// secretsIn fills a database with one of every kind of secret and returns
// them as they must never appear in the file.
func secretsIn(t *testing.T, db *DB) [][]byte {
	t.Helper()
	const enabled, pending = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
	enroll(t, db, "alice", enabled)
	create := func() (account.Enrollment, error) {
		return account.Enrollment{Secret: pending, Expires: t0.Add(time.Hour)}, nil
	}
	if _, err := account.EnrollmentFor(db, "bob", 0, t0, create); err != nil {
		t.Fatal(err)
	}
	hashKey := []byte("session-hash-key-0123456789abcdef")
	blockKey := []byte("session-block-key-0123456789abcd")
	if _, _, err := db.SessionKeys(func() ([]byte, []byte, error) { return hashKey, blockKey, nil }); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, s := range [][]byte{[]byte(enabled), []byte(pending), hashKey, blockKey} {
		out = append(out, s, []byte(base64.StdEncoding.EncodeToString(s)))
		// The first 16 bytes too, in case a secret were split over pages.
		out = append(out, s[:16])
	}
	return out
}

func TestSecrets_ACopyOfTheFileRevealsNone(t *testing.T) {
	path := tempPath(t)
	db := openTest(t, path, mustKey(t))
	secrets := secretsIn(t, db)

	// Read the file as an attacker with a copy would: while it is open,
	// and once more through Backup.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if _, err := db.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string][]byte{"file": raw, "backup": backup.Bytes()} {
		if !bytes.Contains(file, []byte("alice")) || !bytes.Contains(file, []byte("backup_codes")) {
			t.Fatalf("%s: the scan does not see plain record contents", name)
		}
		for _, s := range secrets {
			if bytes.Contains(file, s) {
				t.Errorf("%s contains the secret %q in plain text", name, s[:6])
			}
		}
	}
}

func TestSecrets_ACiphertextMovedToAnotherUserDoesNotOpen(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")
	enroll(t, db, "mallory", "KRSXG5CTMVRXEZLU")
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		alice, _, err := loadAccount(tx, "alice")
		if err != nil {
			return err
		}
		mallory, _, err := loadAccount(tx, "mallory")
		if err != nil {
			return err
		}
		mallory.TOTPSecret = alice.TOTPSecret
		return db.putAccount(tx, "mallory", mallory)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Account("mallory")
	if err == nil {
		t.Fatal("Account(mallory) opened alice's secret")
	}
	if strings.Contains(err.Error(), "JBSWY3DP") {
		t.Errorf("error %q shows the secret", err)
	}
}

func TestSessionState_NeedsNoDecryption(t *testing.T) {
	db := openTest(t, tempPath(t), mustKey(t))
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")
	// Damage the ciphertext: SessionState must not notice, Account must.
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		rec, _, err := loadAccount(tx, "alice")
		if err != nil {
			return err
		}
		rec.TOTPSecret[len(rec.TOTPSecret)-1] ^= 1
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketAccounts).Put([]byte("alice"), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := db.SessionState("alice"); err != nil || !st.TOTPEnabled {
		t.Errorf("SessionState = %+v, %v; want TOTPEnabled without decrypting", st, err)
	}
	if _, err := db.Account("alice"); err == nil {
		t.Error("Account decrypted a damaged secret")
	}
}

// everything reads every secret back, failing the test if one does not open.
func everything(t *testing.T, db *DB) (alice, bobPending string, hashKey []byte) {
	t.Helper()
	a, err := db.Account("alice")
	if err != nil {
		t.Fatalf("Account(alice): %v", err)
	}
	e, err := account.EnrollmentFor(db, "bob", 0, t0, func() (account.Enrollment, error) {
		return account.Enrollment{}, errors.New("the pending enrollment was lost")
	})
	if err != nil {
		t.Fatalf("PendingEnrollment(bob): %v", err)
	}
	h, _, err := db.SessionKeys(func() ([]byte, []byte, error) { return nil, nil, errors.New("the session keys were lost") })
	if err != nil {
		t.Fatalf("SessionKeys: %v", err)
	}
	return a.TOTPSecret, e.Secret, h
}

// keyIDsIn returns the key ids of every ciphertext in the file at path.
func keyIDsIn(t *testing.T, db *DB) map[secrets.KeyID]int {
	t.Helper()
	ids := map[secrets.KeyID]int{}
	note := func(sealed []byte) {
		if sealed == nil {
			return
		}
		id, err := secrets.SealedKeyID(sealed)
		if err != nil {
			t.Errorf("ciphertext: %v", err)
		}
		ids[id]++
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		for _, k := range [][]byte{keyCanary, keySessionHash, keySessionBlock} {
			note(meta.Get(k))
		}
		return tx.Bucket(bucketAccounts).ForEach(func(k, _ []byte) error {
			rec, _, err := loadAccount(tx, string(k))
			note(rec.TOTPSecret)
			if rec.Pending != nil {
				note(rec.Pending.Secret)
			}
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestRotateKey_NewKeyAloneOpensEverythingAndOldKeyNothing(t *testing.T) {
	path := tempPath(t)
	oldKey, newKey := mustKey(t), mustKey(t)
	db, err := Open(path, Options{Keys: []secrets.Key{oldKey}})
	if err != nil {
		t.Fatal(err)
	}
	secretsIn(t, db)
	wantAlice, wantBob, wantHash := everything(t, db)
	if err := db.RotateKey(newKey); err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	if ids := keyIDsIn(t, db); len(ids) != 1 || ids[newKey.KeyID()] != 5 {
		t.Errorf("after rotation ciphertexts are under %v, want all 5 under %s", ids, newKey.ID())
	}
	// The open DB keeps working, and its new ciphertexts use the new key.
	enroll(t, db, "carol", "MFRGGZDFMZTWQ2LK")
	checkConsistent(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := Open(path, Options{Keys: []secrets.Key{oldKey}}); err == nil || !strings.Contains(err.Error(), newKey.ID()) {
		t.Errorf("Open with the old key after rotation = %v, want a refusal naming the new key id", err)
	}
	db = openTest(t, path, newKey)
	alice, bob, hash := everything(t, db)
	if alice != wantAlice || bob != wantBob || !bytes.Equal(hash, wantHash) {
		t.Error("secrets differ after rotation")
	}
	if a, err := db.Account("carol"); err != nil || a.TOTPSecret != "MFRGGZDFMZTWQ2LK" {
		t.Errorf("Account(carol) written after rotation: %v", err)
	}
}

func TestOpen_WithANewKeyFirstMovesEverythingToIt(t *testing.T) {
	path := tempPath(t)
	oldKey, newKey := mustKey(t), mustKey(t)
	db, err := Open(path, Options{Keys: []secrets.Key{oldKey}})
	if err != nil {
		t.Fatal(err)
	}
	secretsIn(t, db)
	wantAlice, _, _ := everything(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{Keys: []secrets.Key{newKey, oldKey}})
	if err != nil {
		t.Fatalf("Open with new and old key: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, path, newKey)
	if alice, _, _ := everything(t, db); alice != wantAlice {
		t.Error("secret differs after rotation at Open")
	}
}

func TestBackup_IsAConsistentCopyWhileInUse(t *testing.T) {
	key := mustKey(t)
	db := openTest(t, tempPath(t), key)
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")

	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		// Writes go on during the backup.
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := account.BumpGeneration(db, "bob"); err != nil {
				done <- err
				return
			}
		}
	}()
	var buf bytes.Buffer
	n, err := db.Backup(&buf)
	close(stop)
	if werr := <-done; werr != nil {
		t.Fatal(werr)
	}
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("Backup = %d, %v; wrote %d", n, err, buf.Len())
	}

	restored := tempPath(t)
	if err := os.WriteFile(restored, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	copyDB := openTest(t, restored, key)
	list, err := operator.Accounts(copyDB)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) == 0 || list[0].Name != "alice" || !list[0].TOTPEnabled || list[0].BackupCodesLeft != 2 {
		t.Errorf("restored accounts = %+v, want alice with TOTP and 2 codes", list)
	}
	if a, err := copyDB.Account("alice"); err != nil || a.TOTPSecret != "JBSWY3DPEHPK3PXP" {
		t.Errorf("restored Account(alice): %v", err)
	}
}

func TestCrash_AFileCopiedWithoutCloseOpens(t *testing.T) {
	path := tempPath(t)
	key := mustKey(t)
	db := openTest(t, path, key)
	enroll(t, db, "alice", "JBSWY3DPEHPK3PXP")
	a, lock, err := account.TakeAttempt(db, t0, time.Minute, []account.Limit{{Key: "user:bob", Max: 3}})
	if err != nil || lock != nil {
		t.Fatal(err, lock)
	}
	if _, err := account.FailAttempt(db, a, t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	// What a process killed now leaves on disk: the file as it is, still
	// locked by nobody, never closed.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := tempPath(t)
	if err := os.WriteFile(crashed, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	after := openTest(t, crashed, key)
	if got, err := after.Account("alice"); err != nil || got.TOTPSecret != "JBSWY3DPEHPK3PXP" {
		t.Errorf("Account(alice) after the crash: %v", err)
	}
	if c, err := after.Counter("user:bob"); err != nil || c.Failures != 1 {
		t.Errorf("counter after the crash = %+v, %v; want 1 failure", c, err)
	}
}
