package storage

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// The crash test runs the test binary a second time as a child that
// enrolls users until it is killed. These variables carry the database
// path and key to the child.
const (
	envCrashPath = "TOTP_AUTH_CRASH_DB"
	envCrashKey  = "TOTP_AUTH_CRASH_KEY"
)

func crashSecret(i int) string { return fmt.Sprintf("JBSWY3DPEHPK3PXP%016d", i) }

// TestMain runs the child side of the crash test when the parent started
// this binary for it, and the tests otherwise.
func TestMain(m *testing.M) {
	if path := os.Getenv(envCrashPath); path != "" {
		if err := writeUntilKilled(path, os.Getenv(envCrashKey)); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// writeUntilKilled is the child: it enrolls users one after another,
// printing each confirmation only after ConfirmEnrollment returned, until
// the parent kills it.
func writeUntilKilled(path, hexKey string) error {
	key, err := secrets.ParseKey(hexKey)
	if err != nil {
		return err
	}
	db, err := Open(path, Options{Keys: []secrets.Key{key}})
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		user := fmt.Sprintf("user%d", i)
		create := func() (account.Enrollment, error) {
			return account.Enrollment{Secret: crashSecret(i), Expires: t0.Add(time.Hour)}, nil
		}
		if _, err := account.EnrollmentFor(db, user, 0, t0, create); err != nil {
			return err
		}
		// Counter writes in between, so the kill may land in any kind of write.
		a, _, err := account.TakeAttempt(db, t0, time.Hour, []account.Limit{{Key: "ip:" + user, Max: 5}})
		if err != nil {
			return err
		}
		if _, err := account.FailAttempt(db, a, t0, time.Hour); err != nil {
			return err
		}
		if err := account.ConfirmEnrollment(db, user, crashSecret(i), 1, [][]byte{[]byte("h")}, t0); err != nil {
			return err
		}
		// Only now is the enrollment confirmed to the caller.
		fmt.Println("confirmed", i)
	}
}

func TestCrash_KilledProcessKeepsEveryConfirmedEnrollment(t *testing.T) {
	path := tempPath(t)
	key := mustKey(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envCrashPath+"="+path, envCrashKey+"="+hex.EncodeToString(key[:]))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	confirmed := -1
	lines := bufio.NewScanner(out)
	for confirmed < 40 && lines.Scan() {
		var n int
		if _, err := fmt.Sscanf(lines.Text(), "confirmed %d", &n); err == nil {
			confirmed = n
		}
	}
	// SIGKILL: no deferred function, no Close, the write in progress cut off.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // it was killed: the error says so
	if confirmed < 40 {
		t.Fatalf("the child confirmed only %d enrollments before it stopped", confirmed+1)
	}

	db := openTest(t, path, key)
	for i := 0; i <= confirmed; i++ {
		a, err := db.Account("user" + strconv.Itoa(i))
		if err != nil {
			t.Fatalf("Account(user%d): %v", i, err)
		}
		if a.TOTPSecret != crashSecret(i) || len(a.BackupCodes) != 1 {
			t.Errorf("user%d lost its confirmed enrollment", i)
		}
	}
}
