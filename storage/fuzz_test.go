package storage

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/operator"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// Fuzz targets for what the database file holds. The file is trusted less
// than the code that reads it: a damaged or edited file must give errors,
// never a panic, and never a secret that a configured key did not seal.
// The seed corpus of each target runs with every `go test`; `make fuzz`
// (and CI, briefly) runs each one for a bounded time.

// The keys are fixed, so that an input the fuzzer saves in one run means
// the same in the next. fuzzCurrent and fuzzOld are configured; fuzzOther
// is not.
var (
	fuzzCurrent = fuzzKey("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	fuzzOld     = fuzzKey("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a")
	fuzzOther   = fuzzKey("c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3")
)

// fuzzNow is the time the targets run at.
var fuzzNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// The ciphertext layout of package secrets: version, key id, nonce.
const (
	sealVersion  = 1
	sealOverhead = 1 + 4 + 12
)

// fuzzPurposes are every purpose a ciphertext is sealed for.
var fuzzPurposes = []string{secrets.PurposeTOTPSecret, secrets.PurposePendingSecret, secrets.PurposeSessionHash, secrets.PurposeSessionBlock, secrets.PurposeCanary}

func fuzzKey(s string) secrets.Key {
	k, err := secrets.ParseKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

func fuzzKeyring(tb testing.TB, keys ...secrets.Key) *secrets.Keyring {
	tb.Helper()
	r, err := secrets.NewKeyring(keys)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func mustSeal(tb testing.TB, r *secrets.Keyring, k secrets.Key, purpose, owner, plaintext string) []byte {
	tb.Helper()
	sealed, err := r.Seal(k.KeyID(), purpose, owner, []byte(plaintext))
	if err != nil {
		tb.Fatal(err)
	}
	return sealed
}

// authentic opens sealed the way the layout comment in key.go describes
// it, with its own AES-GCM instead of secrets.Keyring's, and reports whether one of
// keys sealed it for purpose and owner. The targets hold secrets.Keyring.open to
// it: open may succeed only where authentic does, with the same plaintext.
func authentic(sealed []byte, purpose, owner string, keys ...secrets.Key) ([]byte, bool) {
	const version, idLen, nonceLen, tagLen = 1, 4, 12, 16
	if len(sealed) < 1+idLen+nonceLen+tagLen || sealed[0] != version {
		return nil, false
	}
	for _, k := range keys {
		if hex.EncodeToString(sealed[1:1+idLen]) != k.ID() {
			continue
		}
		block, err := aes.NewCipher(k[:])
		if err != nil {
			panic(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			panic(err)
		}
		ad := []byte("totp_auth\x00" + purpose + "\x00" + owner)
		plain, err := aead.Open(nil, sealed[1+idLen:1+idLen+nonceLen], sealed[1+idLen+nonceLen:], ad)
		return plain, err == nil
	}
	return nil, false
}

func FuzzOpenSealed(f *testing.F) {
	r := fuzzKeyring(f, fuzzCurrent, fuzzOld)
	current := mustSeal(f, r, fuzzCurrent, secrets.PurposeTOTPSecret, "alice", "JBSWY3DPEHPK3PXP")
	old := mustSeal(f, r, fuzzOld, secrets.PurposePendingSecret, "alice", "JBSWY3DPEHPK3PXP")
	other := mustSeal(f, fuzzKeyring(f, fuzzOther), fuzzOther, secrets.PurposeTOTPSecret, "alice", "JBSWY3DPEHPK3PXP")
	canary := mustSeal(f, r, fuzzCurrent, secrets.PurposeCanary, "", string(secrets.CanaryText))
	// The id of one key in front of a ciphertext of the other.
	swapped := bytes.Clone(old)
	copy(swapped[1:5], current[1:5])
	tampered := bytes.Clone(current)
	tampered[len(tampered)-1] ^= 1
	for _, seed := range []struct {
		sealed []byte
		owner  string
	}{
		{current, "alice"}, {current, "bob"}, {old, "alice"}, {other, "alice"}, {canary, ""},
		{swapped, "alice"}, {tampered, "alice"},
		{append([]byte{2}, current[1:]...), "alice"}, // unknown version
		{current[:sealOverhead], "alice"}, {current[:sealOverhead-1], "alice"}, {current[:sealOverhead+15], "alice"},
		{nil, ""}, {[]byte{sealVersion}, "alice"},
	} {
		f.Add(seed.sealed, seed.owner)
	}
	f.Fuzz(func(t *testing.T, sealed []byte, owner string) {
		id, idErr := secrets.SealedKeyID(sealed)
		wellFormed := len(sealed) >= sealOverhead && sealed[0] == sealVersion
		if (idErr == nil) != wellFormed {
			t.Fatalf("secrets.SealedKeyID(%x) error %v, but well formed: %v", sealed, idErr, wellFormed)
		}
		if wellFormed && !bytes.Equal(id[:], sealed[1:5]) {
			t.Fatalf("secrets.SealedKeyID(%x) = %s, not the 4 bytes after the version", sealed, id)
		}
		for _, purpose := range fuzzPurposes {
			// open gets a copy that is destroyed afterwards, as bbolt's
			// memory may be once the transaction ends.
			in := bytes.Clone(sealed)
			plain, err := r.Open(purpose, owner, in)
			for i := range in {
				in[i] = 0xff
			}
			want, ok := authentic(sealed, purpose, owner, fuzzCurrent, fuzzOld)
			switch {
			case err == nil && !ok:
				t.Fatalf("open(%s, %q) accepted %x, which no configured key sealed for them", purpose, owner, sealed)
			case err != nil && ok:
				t.Fatalf("open(%s, %q) refused an authentic ciphertext: %v", purpose, owner, err)
			case err == nil && !bytes.Equal(plain, want):
				t.Fatalf("open(%s, %q) returned %x, want %x (or it shares memory with its input)", purpose, owner, plain, want)
			case err != nil && plain != nil:
				t.Fatalf("open(%s, %q) failed but returned bytes", purpose, owner)
			}
			if err != nil && wellFormed && id != fuzzCurrent.KeyID() && id != fuzzOld.KeyID() && !strings.Contains(err.Error(), id.String()) {
				t.Fatalf("error for a ciphertext under the unconfigured key %s does not name it: %v", id, err)
			}
		}
	})
}

func FuzzSealRoundTrip(f *testing.F) {
	f.Add([]byte("JBSWY3DPEHPK3PXP"), "alice", uint16(0))
	f.Add([]byte{}, "", uint16(17))
	f.Add(bytes.Repeat([]byte{0}, 64), "bob\x00x", uint16(0xffff))
	r := fuzzKeyring(f, fuzzCurrent, fuzzOld)
	onlyOther := fuzzKeyring(f, fuzzOther)
	f.Fuzz(func(t *testing.T, plaintext []byte, owner string, flip uint16) {
		for _, k := range []secrets.Key{fuzzCurrent, fuzzOld} {
			sealed, err := r.Seal(k.KeyID(), secrets.PurposeTOTPSecret, owner, plaintext)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != sealOverhead+len(plaintext)+16 {
				t.Fatalf("ciphertext of %d bytes for %d bytes of plaintext", len(sealed), len(plaintext))
			}
			if bytes.Contains(sealed, plaintext) && len(plaintext) >= 8 {
				t.Fatalf("ciphertext contains the plaintext")
			}
			if want, ok := authentic(sealed, secrets.PurposeTOTPSecret, owner, k); !ok || !bytes.Equal(want, plaintext) {
				t.Fatalf("seal under %s does not follow the documented layout", k)
			}
			plain, err := r.Open(secrets.PurposeTOTPSecret, owner, sealed)
			if err != nil || !bytes.Equal(plain, plaintext) {
				t.Fatalf("round trip under %s: %x, %v; want %x", k, plain, err, plaintext)
			}
			again, err := r.Seal(k.KeyID(), secrets.PurposeTOTPSecret, owner, plaintext)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(again[:sealOverhead], sealed[:sealOverhead]) {
				t.Fatal("two seals share a nonce")
			}

			// Any other owner, any other purpose, any changed bit, another key: refused.
			if _, err := r.Open(secrets.PurposeTOTPSecret, owner+"x", sealed); err == nil {
				t.Fatal("opened for another owner")
			}
			if _, err := r.Open(secrets.PurposePendingSecret, owner, sealed); err == nil {
				t.Fatal("opened for another purpose")
			}
			flipped := bytes.Clone(sealed)
			flipped[int(flip)%len(flipped)] ^= 1 << (flip >> 13)
			if _, err := r.Open(secrets.PurposeTOTPSecret, owner, flipped); err == nil {
				t.Fatalf("opened with bit %d of byte %d flipped", flip>>13, int(flip)%len(flipped))
			}
			if _, err := onlyOther.Open(secrets.PurposeTOTPSecret, owner, sealed); err == nil || !strings.Contains(err.Error(), k.ID()) {
				t.Fatalf("a secrets.Keyring without %s: error %v should name the key id", k, err)
			}
		}
	})
}

// fuzzDB opens a database with the current and the old key for one fuzz
// target. It neither syncs to disk nor lets a batch wait for company, so
// that each input is written and read in microseconds; no fuzz target
// needs the file to outlive the process.
func fuzzDB(f *testing.F) *DB {
	f.Helper()
	db, err := Open(tempPath(f), Options{Keys: []secrets.Key{fuzzCurrent, fuzzOld}})
	if err != nil {
		f.Fatal(err)
	}
	db.bolt.NoSync = true
	db.bolt.MaxBatchSize = 1
	f.Cleanup(func() {
		checkConsistent(f, db)
		if err := db.Close(); err != nil {
			f.Errorf("Close: %v", err)
		}
	})
	return db
}

// rawAccount returns what the accounts bucket holds for user.
func rawAccount(tb testing.TB, db *DB, user string) []byte {
	tb.Helper()
	var v []byte
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucketAccounts).Get([]byte(user)))
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return v
}

func putRaw(tb testing.TB, db *DB, bucket []byte, key string, v []byte) {
	tb.Helper()
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), v) }); err != nil {
		tb.Fatal(err)
	}
	// A write behind the DB's back, as a tampered file would be at start:
	// forget what SessionState remembers of it.
	db.states.m.Delete(key)
}

func FuzzDecodeAccount(f *testing.F) {
	db := fuzzDB(f)
	keys := db.keys.Load()

	// Records as the code writes them: confirmed, pending, database user.
	enrollment := func(secret string) func() (account.Enrollment, error) {
		return func() (account.Enrollment, error) {
			return account.Enrollment{Secret: secret, Expires: fuzzNow.Add(gateway.EnrollmentTTL)}, nil
		}
	}
	if _, err := account.EnrollmentFor(db, "alice", 0, fuzzNow, enrollment("JBSWY3DPEHPK3PXP")); err != nil {
		f.Fatal(err)
	}
	f.Add(rawAccount(f, db, "alice"))
	if err := account.ConfirmEnrollment(db, "alice", "JBSWY3DPEHPK3PXP", 7, [][]byte{[]byte("hash-1"), []byte("hash-2")}, fuzzNow); err != nil {
		f.Fatal(err)
	}
	f.Add(rawAccount(f, db, "alice"))
	if err := operator.SetPassword(db, "alice", []byte("$2a$04$hash")); err != nil {
		f.Fatal(err)
	}
	f.Add(rawAccount(f, db, "alice"))

	// Secrets sealed under the old key, for someone else, for another
	// field, under a key that is not configured.
	for _, rec := range []accountRecord{
		{TOTPSecret: mustSeal(f, keys, fuzzOld, secrets.PurposeTOTPSecret, "alice", "OLDKEYSECRET")},
		{TOTPSecret: mustSeal(f, keys, fuzzCurrent, secrets.PurposeTOTPSecret, "bob", "BOBSSECRET")},
		{TOTPSecret: mustSeal(f, keys, fuzzCurrent, secrets.PurposePendingSecret, "alice", "PENDINGSECRET")},
		{TOTPSecret: mustSeal(f, fuzzKeyring(f, fuzzOther), fuzzOther, secrets.PurposeTOTPSecret, "alice", "OTHERKEY")},
		{Pending: &pendingRecord{Secret: mustSeal(f, keys, fuzzCurrent, secrets.PurposePendingSecret, "alice", "PENDING"), Expires: fuzzNow.Add(time.Hour).UnixNano()}},
		{Pending: &pendingRecord{Secret: mustSeal(f, keys, fuzzCurrent, secrets.PurposeTOTPSecret, "alice", "WRONGFIELD"), Expires: fuzzNow.Add(time.Hour).UnixNano()}},
	} {
		v, err := json.Marshal(rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	for _, s := range []string{
		"", "{}", "null", "[]", "{", `{"totp_secret":""}`, `{"totp_secret":"AQ=="}`, `{"totp_secret":null}`,
		`{"last_step":"7"}`, `{"last_step":1e300}`, `{"generation":-1}`, `{"backup_codes":[null,""]}`,
		`{"pending":{}}`, `{"pending":null}`, `{"pending":{"secret":"","expires":9223372036854775807}}`,
		`{"TOTP_SECRET":"AQ==","totp_secret":"AQ=="}`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}

	const user = "alice"
	const fresh = "FRESHLYCREATEDSECRET"
	f.Fuzz(func(t *testing.T, value []byte) {
		putRaw(t, db, bucketAccounts, user, value)
		var rec accountRecord
		decodeErr := db.bolt.View(func(tx *bolt.Tx) error {
			var err error
			rec, _, err = loadAccount(tx, user)
			return err
		})

		a, err := db.Account(user)
		if decodeErr != nil && err == nil {
			t.Fatalf("Account read a record loadAccount refuses (%v)", decodeErr)
		}
		if err == nil && a.TOTPSecret != "" {
			want, ok := authentic(rec.TOTPSecret, secrets.PurposeTOTPSecret, user, fuzzCurrent, fuzzOld)
			if !ok || string(want) != a.TOTPSecret {
				t.Fatalf("Account yielded a TOTP secret that no configured key sealed for %s: %x", user, rec.TOTPSecret)
			}
		}
		if err == nil && (!bytes.Equal(a.PasswordHash, rec.PasswordHash) || a.LastStep != rec.LastStep ||
			a.Generation != rec.Generation || a.MustRegenerate != rec.MustRegenerate || !slices.EqualFunc(a.BackupCodes, rec.BackupCodes, bytes.Equal)) {
			t.Fatalf("Account = %+v, but the record is %+v", a, rec)
		}
		if _, err := db.Accounts(); (err == nil) != (decodeErr == nil) {
			t.Fatalf("Accounts: %v, but loadAccount: %v", err, decodeErr)
		}

		// A pending enrollment comes from the record only if it is
		// authentic and unexpired; otherwise a fresh one replaces it.
		e, err := account.EnrollmentFor(db, user, 0, fuzzNow, enrollment(fresh))
		if decodeErr != nil && err == nil {
			t.Fatalf("PendingEnrollment read a record loadAccount refuses (%v)", decodeErr)
		}
		if err == nil && e.Secret != fresh {
			if rec.Pending == nil || fuzzNow.UnixNano() >= rec.Pending.Expires {
				t.Fatalf("PendingEnrollment yielded %q from a record without an unexpired pending enrollment", e.Secret)
			}
			want, ok := authentic(rec.Pending.Secret, secrets.PurposePendingSecret, user, fuzzCurrent, fuzzOld)
			if !ok || string(want) != e.Secret {
				t.Fatalf("PendingEnrollment yielded a secret that no configured key sealed for %s: %x", user, rec.Pending.Secret)
			}
		}
		if decodeErr != nil {
			return
		}

		// Whatever decodes is written back in a form that reads back the
		// same: a second write changes nothing.
		putRaw(t, db, bucketAccounts, user, value)
		var first, second []byte
		var again accountRecord
		err = db.bolt.Update(func(tx *bolt.Tx) error {
			for _, out := range []*[]byte{&first, &second} {
				r, _, err := loadAccount(tx, user)
				if err != nil {
					return err
				}
				if err := db.putAccount(tx, user, r); err != nil {
					return err
				}
				*out = bytes.Clone(tx.Bucket(bucketAccounts).Get([]byte(user)))
				again = r
			}
			return nil
		})
		if err != nil {
			t.Fatalf("a decoded record does not decode once written back: %v", err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("writing a record back is not stable:\n%s\n%s", first, second)
		}
		if st, err := db.SessionState(user); err != nil || st.Generation != again.Generation ||
			st.MustRegenerate != again.MustRegenerate || st.TOTPEnabled != (again.TOTPSecret != nil) {
			t.Fatalf("session state %+v (%v) does not match the record written with it", st, err)
		}
	})
}

func FuzzAccountRoundTrip(f *testing.F) {
	f.Add("alice", []byte("$2a$04$hash"), "JBSWY3DPEHPK3PXP", int64(7), []byte("hash-1\x00hash-2"), false, uint64(3), "", int64(0))
	f.Add("bob", []byte{}, "", int64(0), []byte{}, true, uint64(0), "PENDINGSECRET", fuzzNow.Add(time.Minute).UnixNano())
	f.Add("Ünïcode user", []byte{0}, "\x00\xff", int64(-1), []byte("\x00"), true, ^uint64(0), "X", int64(-1))
	db := fuzzDB(f)
	keys := db.keys.Load()
	f.Fuzz(func(t *testing.T, user string, passwordHash []byte, secret string, lastStep int64, codes []byte,
		mustRegenerate bool, generation uint64, pendingSecret string, expires int64) {
		if user == "" || len(user) > bolt.MaxKeySize {
			return // bbolt refuses such keys, and the gateway never asks for them
		}
		// A record as the code makes one: empty fields are absent.
		var rec accountRecord
		if len(passwordHash) > 0 {
			rec.PasswordHash = passwordHash
		}
		if secret != "" {
			rec.TOTPSecret = mustSeal(t, keys, fuzzCurrent, secrets.PurposeTOTPSecret, user, secret)
		}
		rec.LastStep = lastStep
		if len(codes) > 0 {
			rec.BackupCodes = bytes.Split(codes, []byte{0})
		}
		rec.MustRegenerate = mustRegenerate
		rec.Generation = generation
		if pendingSecret != "" {
			rec.Pending = &pendingRecord{Secret: mustSeal(t, keys, fuzzCurrent, secrets.PurposePendingSecret, user, pendingSecret), Expires: expires}
		}

		var got accountRecord
		var stored bool
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			if err := db.putAccount(tx, user, rec); err != nil {
				return err
			}
			var err error
			got, stored, err = loadAccount(tx, user)
			return err
		})
		if err != nil || !stored {
			t.Fatalf("write and read back: stored %v, %v", stored, err)
		}
		if !reflect.DeepEqual(got, rec) {
			t.Fatalf("round trip changed the record:\n got %+v\nwant %+v", got, rec)
		}

		a, err := db.Account(user)
		if err != nil {
			t.Fatal(err)
		}
		if a.TOTPSecret != secret || !bytes.Equal(a.PasswordHash, rec.PasswordHash) || a.LastStep != lastStep ||
			!slices.EqualFunc(a.BackupCodes, rec.BackupCodes, bytes.Equal) || a.MustRegenerate != mustRegenerate || a.Generation != generation {
			t.Fatalf("Account = %+v, want the record written", a)
		}
		st, err := db.SessionState(user)
		if want := (account.SessionState{Generation: generation, MustRegenerate: mustRegenerate, TOTPEnabled: secret != "", PasswordSet: rec.PasswordHash != nil}); err != nil || st != want {
			t.Fatalf("SessionState = %+v, %v; want %+v", st, err, want)
		}
		if pendingSecret != "" && fuzzNow.UnixNano() < expires {
			e, err := account.EnrollmentFor(db, user, 0, fuzzNow, func() (account.Enrollment, error) {
				return account.Enrollment{}, errors.New("the stored pending enrollment should have been used")
			})
			if err != nil || e.Secret != pendingSecret || e.Expires.UnixNano() != expires {
				t.Fatalf("PendingEnrollment = %+v, %v; want the stored one", e, err)
			}
		}

		// The next input starts from an empty database, which stays small.
		err = db.bolt.Update(func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketAccounts).Delete([]byte(user)); err != nil {
				return err
			}
			return tx.Bucket(bucketSessions).Delete([]byte(user))
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeCounter(f *testing.F) {
	db := fuzzDB(f)
	const key = "user:alice"
	now := fuzzNow
	window := 15 * time.Minute
	// A counter as the code writes it, after one failure at now.
	a, _, err := account.TakeAttempt(db, now, window, []account.Limit{{Key: key, Max: 5}})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := account.FailAttempt(db, a, now, window); err != nil {
		f.Fatal(err)
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		f.Add(bytes.Clone(tx.Bucket(bucketCounters).Get([]byte(key))))
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(make([]byte, counterValueSize))
	f.Add(bytes.Repeat([]byte{0xff}, counterValueSize))
	f.Add(bytes.Repeat([]byte{0x7f}, counterValueSize))
	f.Add(make([]byte, counterValueSize-1))
	f.Add(make([]byte, counterValueSize+1))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, v []byte) {
		c, err := decodeCounter(key, v)
		if len(v) != counterValueSize {
			if err == nil {
				t.Fatalf("decoded a counter of %d bytes", len(v))
			}
			return
		}
		if err != nil {
			t.Fatalf("refused a counter of %d bytes: %v", counterValueSize, err)
		}
		// The layout, read independently: two times in Unix nanoseconds
		// (0 for none), then failures and slots in flight.
		at := func(n uint64) time.Time {
			if n == 0 {
				return time.Time{}
			}
			return time.Unix(0, int64(n))
		}
		if c.Key != key || !c.WindowStart.Equal(at(binary.BigEndian.Uint64(v))) || !c.LockedUntil.Equal(at(binary.BigEndian.Uint64(v[8:]))) ||
			c.Failures != int(binary.BigEndian.Uint32(v[16:])) || c.InFlight != int(binary.BigEndian.Uint32(v[20:])) {
			t.Fatalf("decodeCounter(%x) = %+v", v, c)
		}
		if got := encodeCounter(c); !bytes.Equal(got, v) {
			t.Fatalf("encodeCounter(decodeCounter(%x)) = %x", v, got)
		}

		// Every reader of the counters bucket copes with it.
		putRaw(t, db, bucketCounters, key, v)
		if _, err := operator.Locks(db, now); err != nil {
			t.Fatal(err)
		}
		if _, err := operator.LockState(db, key, now); err != nil {
			t.Fatal(err)
		}
		a, lock, err := account.TakeAttempt(db, now, window, []account.Limit{{Key: key, Max: 5}, {Key: "ip:127.0.0.1", Max: 50}})
		if err != nil {
			t.Fatal(err)
		}
		if lock == nil {
			if v[0]&1 == 0 {
				_, err = account.FailAttempt(db, a, now, window)
			} else {
				err = account.ReleaseAttempt(db, a)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if _, err := operator.PruneCounters(db, now, window); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeSessionState(f *testing.F) {
	db := fuzzDB(f)
	for _, st := range []account.SessionState{{}, {Generation: 3, TOTPEnabled: true}, {Generation: ^uint64(0), MustRegenerate: true, TOTPEnabled: true},
		{Generation: 2, RevokedSessions: "\x00\x00\x00\x00\x00\x00\x00\x07", AppPasswords: "packed app passwords"}} {
		f.Add(encodeSessionState(st))
	}
	f.Add([]byte{})
	f.Add(make([]byte, sessionValueSize+1))
	f.Add(bytes.Repeat([]byte{0xff}, sessionValueSize))
	f.Fuzz(func(t *testing.T, v []byte) {
		st, err := decodeSessionState(v)
		withApps := len(v) >= sessionValueSize && v[8]&flagAppPasswords != 0
		if !withApps && (err == nil) != (len(v) >= sessionValueSize && (len(v)-sessionValueSize)%8 == 0) {
			t.Fatalf("decodeSessionState of %d bytes: %v", len(v), err)
		}
		if withApps && err == nil && (len(v) < sessionValueSize+4 || len(st.RevokedSessions)%8 != 0) {
			t.Fatalf("decodeSessionState accepted %x with app passwords as %+v", v, st)
		}
		if err != nil {
			return
		}
		if back, err := decodeSessionState(encodeSessionState(st)); err != nil || back != st {
			t.Fatalf("round trip changed %+v into %+v (%v)", st, back, err)
		}
		if v[8]&^(flagMustRegenerate|flagTOTPEnabled|flagPasswordSet) == 0 && !bytes.Equal(encodeSessionState(st), v) {
			t.Fatalf("encodeSessionState(decodeSessionState(%x)) = %x", v, encodeSessionState(st))
		}
		putRaw(t, db, bucketSessions, "alice", v)
		if got, err := db.SessionState("alice"); err != nil || got != st {
			t.Fatalf("SessionState = %+v, %v; want %+v", got, err, st)
		}
	})
}
