// Package pgtest runs a throwaway PostgreSQL cluster for tests: a copy of
// a data directory initdb made once per machine, then the postgres server
// as a direct child process of the test binary, listening only on a unix
// socket in its own directory. Each test binary shares one cluster among
// its tests (Database), each test getting a database of its own, which is
// emptied after it for a later test; Close ends the server and removes its
// directory.
//
// It uses Debian's binaries under /usr/lib/postgresql/<version>/bin (the
// `postgresql` package, which `make test` installs when missing). A missing
// installation is an error, so a test that needs PostgreSQL fails rather
// than skips. PostgreSQL refuses to run as root; when the tests run as root,
// initdb and postgres run as the `postgres` system user the package creates.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// port is only the name of the socket file (.s.PGSQL.<port>): the server
// listens on no TCP port, so clusters of tests running at once never clash.
const port = 5432

// startTimeout bounds how long Start and Restart wait for the server to
// accept connections.
const startTimeout = 30 * time.Second

// Options configures StartWith.
type Options struct {
	// Durable keeps PostgreSQL's own defaults for fsync,
	// synchronous_commit and autovacuum, for measurements; tests leave
	// them off, which is faster and loses nothing a test needs.
	Durable bool
}

// Server is one running cluster. Its methods are safe for concurrent use.
type Server struct {
	bin  string // directory with initdb and postgres
	dir  string // temp dir: data/ and the socket
	cred *syscall.Credential
	opts Options

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	dbs  atomic.Int64

	reuse reuse // emptied databases for Database (see reuse.go)
}

// Start creates a cluster and starts its server. Call Close when done
// (from TestMain, after m.Run).
func Start() (*Server, error) { return StartWith(Options{}) }

// StartWith is Start with options.
func StartWith(opts Options) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	s := &Server{bin: bin, dir: dir, opts: opts}
	if err := s.init(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := s.start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// binDir returns the bin directory of the newest installed PostgreSQL.
func binDir() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(found) == 0 {
		return "", errors.New("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): " +
			"run `make test-deps`, or `apt-get install postgresql`")
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) < version(found[j]) })
	return filepath.Dir(found[len(found)-1]), nil
}

func version(postgres string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(postgres))))
	return v
}

// init makes the cluster's data directory: a copy of the template that
// initdb made once for this machine (see template), handed to the
// postgres user when we are root.
func (s *Server) init() error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("PostgreSQL does not run as root, and there is no postgres user to run it as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return fmt.Errorf("hand %s to the postgres user: %w", s.dir, err)
		}
	}
	tmpl, err := s.template()
	if err != nil {
		return err
	}
	// cp -a keeps the postgres user's ownership and the 0700 mode the
	// server insists on.
	if out, err := exec.Command("cp", "-a", tmpl, s.dataDir()).CombinedOutput(); err != nil {
		return fmt.Errorf("copy the cluster template %s: %w\n%s", tmpl, err, out)
	}
	return nil
}

// template returns a data directory initdb made for this PostgreSQL
// version, shared by every test process on the machine: the packages of
// one `go test ./...` each run their own cluster, as direct children of
// their own test binary (a server left to outlive its parent would not be
// reaped here), and copying a template costs a fraction of initdb. A lock
// file keeps two processes from making it at once; it appears whole, by
// rename, or not at all.
func (s *Server) template() (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("totp-auth-pgtest-template-%d-%d", version(filepath.Join(s.bin, "postgres")), os.Geteuid()))
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("lock the cluster template: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock the cluster template: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
		return dir, nil
	}
	work := dir + ".new"
	_ = os.RemoveAll(work)
	cmd := s.command("initdb", "-D", work, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(work)
		return "", fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := os.Rename(work, dir); err != nil {
		return "", fmt.Errorf("keep the cluster template: %w", err)
	}
	return dir, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// start runs the server and waits until it accepts connections.
func (s *Server) start() error {
	log, err := os.Create(filepath.Join(s.dir, "postgres.log"))
	if err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	defer log.Close()
	args := []string{"-D", s.dataDir(), "-p", strconv.Itoa(port), "-k", s.dir,
		"-c", "listen_addresses=", "-c", "max_connections=200", "-c", "shared_buffers=32MB"}
	if !s.opts.Durable {
		// Autovacuum would start a worker process now and then for each
		// of the many short-lived databases, work no test needs.
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "autovacuum=off")
	}
	cmd := s.command("postgres", args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig (see command) is sent when the thread that started the
	// server exits, not the process: the server is started from a thread
	// locked to a goroutine that waits for it, so that thread lives as
	// long as the server does. Started from any thread, the server died
	// with it when a test locked that thread later and let it exit (as
	// the documentation lab does to enter a network namespace).
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(done)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("postgres exited at start; its log:\n%s", s.Log())
		default:
		}
		if err := s.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			_ = s.stop()
			return fmt.Errorf("postgres did not accept connections within %s (%v); its log:\n%s", startTimeout, err, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// Log returns what the server wrote to its log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	return string(b)
}

// DSN returns a connection string for database db of the cluster.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", s.dir, port, db)
}

// NewDatabase creates an empty database and returns its connection string.
// Each call gives a database no other caller uses.
func (s *Server) NewDatabase() (string, error) {
	name, err := s.createDatabase()
	if err != nil {
		return "", err
	}
	return s.DSN(name), nil
}

// newName returns a database name no earlier call returned.
func (s *Server) newName() string {
	return fmt.Sprintf("test_%d_%d", os.Getpid(), s.dbs.Add(1))
}

// createDatabase creates an empty database and returns its name.
func (s *Server) createDatabase() (string, error) {
	name := s.newName()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect to create a database: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// Stop shuts the server down (fast shutdown: open sessions are ended) and
// waits for it to exit. The cluster stays, so Restart can start it again.
func (s *Server) Stop() error { return s.stop() }

func (s *Server) stop() error {
	s.settle()
	s.closeAdmin()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	// SIGINT is PostgreSQL's fast shutdown; SIGKILL after a grace period.
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
		return nil
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("postgres did not shut down within 15s; killed it")
	}
}

// Restart starts the server again after Stop, on the same cluster.
func (s *Server) Restart() error { return s.start() }

// Close stops the server and removes the cluster.
func (s *Server) Close() error {
	err := s.stop()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("remove %s: %w", s.dir, rmErr)
	}
	return err
}
