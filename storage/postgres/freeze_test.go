package postgres

import (
	"syscall"
	"testing"
)

// freeze stops the server process pid (SIGSTOP) until the test ends.
func freeze(t testing.TB, pid int32) {
	t.Helper()
	if err := syscall.Kill(int(pid), syscall.SIGSTOP); err != nil {
		t.Fatalf("stop backend %d: %v", pid, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(int(pid), syscall.SIGCONT) })
}
