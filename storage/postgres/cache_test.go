package postgres

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/pgtest"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// Short leases keep these tests quick; the mechanism is the same.
const (
	testLease     = 400 * time.Millisecond
	testHeartbeat = 50 * time.Millisecond
)

func openCached(t testing.TB, dsn string, key secrets.Key) *DB {
	t.Helper()
	db := openTest(t, dsn, Options{Keys: []secrets.Key{key}, Lease: testLease, Heartbeat: testHeartbeat})
	waitTrusted(t, db)
	return db
}

func waitTrusted(t testing.TB, db *DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !db.cache.trusted() {
		if time.Now().After(deadline) {
			t.Fatal("the cache never trusted its memory: no heartbeat heard")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func generation(t testing.TB, db *DB, user string) uint64 {
	t.Helper()
	st, err := db.SessionState(user)
	if err != nil {
		t.Fatalf("SessionState(%s): %v", user, err)
	}
	return st.Generation
}

// cached reports whether user's state is in db's memory.
func cached(db *DB, user string) bool {
	e, ok := db.cache.entries.Load(user)
	return ok && e.(*entry).filled
}

// within polls cond until it holds or d passes, and returns how long it took.
func within(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func TestSessionState_ChangeOnOneInstanceReachesTheOtherWithinASecond(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	key := mustKey(t)
	a, b := openCached(t, dsn, key), openCached(t, dsn, key)
	if g := generation(t, b, "alice"); g != 0 || !cached(b, "alice") {
		t.Fatalf("generation %d, cached %v: want 0 from memory", g, cached(b, "alice"))
	}
	if _, err := account.BumpGeneration(a, "alice"); err != nil {
		t.Fatal(err)
	}
	took := within(t, time.Second, "instance b sees the new generation", func() bool { return generation(t, b, "alice") == 1 })
	t.Logf("propagated in %s", took)
}

func TestSessionState_ChangeMadeInSQLReachesTheCache(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	db := openCached(t, dsn, mustKey(t))
	if _, err := account.BumpGeneration(db, "alice"); err != nil {
		t.Fatal(err)
	}
	generation(t, db, "alice")
	pgtest.Exec(t, dsn, "UPDATE totp_auth.accounts SET generation = 7 WHERE name = 'alice'")
	within(t, time.Second, "a change typed in SQL reaches the cache", func() bool { return generation(t, db, "alice") == 7 })
	pgtest.Exec(t, dsn, "TRUNCATE totp_auth.accounts")
	within(t, time.Second, "a truncation reaches the cache", func() bool { return generation(t, db, "alice") == 0 })
}

// A change that no session check reads (an accepted time step) sends no
// notification, so the cached entry stays.
func TestSessionState_StepAcceptedKeepsTheEntry(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	db := openCached(t, dsn, mustKey(t))
	enroll(t, db, "alice")
	within(t, time.Second, "alice's state cached after the enrollment was heard", func() bool {
		generation(t, db, "alice")
		time.Sleep(20 * time.Millisecond)
		return cached(db, "alice")
	})
	if err := account.AcceptStep(db, "alice", 5); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if !cached(db, "alice") {
		t.Fatal("accepting a time step dropped the cached session state")
	}
}

// listenerPID returns the backend pid of db's listening connection. Call
// it while db is the only instance on its database: the query finds a
// listener of the database, and another instance's would do.
func listenerPID(t testing.TB, db *DB) int32 {
	t.Helper()
	var pid int32
	within(t, 5*time.Second, "find the listener", func() bool {
		err := db.pool.QueryRow(context.Background(),
			"SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() AND query LIKE 'LISTEN%'",
			ListenerApplicationName).Scan(&pid)
		return err == nil
	})
	return pid
}

func TestSessionState_ListenerKilledNeverServesStaleState(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	key := mustKey(t)
	db := openCached(t, dsn, key)
	pid := listenerPID(t, db)
	writer := openCached(t, dsn, key)
	generation(t, db, "alice")

	pgtest.Exec(t, dsn, "SELECT pg_terminate_backend($1)", pid)
	took := within(t, time.Second, "the dropped listener is noticed", func() bool { return !db.cache.listening.Load() })
	t.Logf("listener drop noticed after %s", took)
	// alice changes while nothing listens: her cached state must not be used.
	if _, err := account.BumpGeneration(writer, "alice"); err != nil {
		t.Fatal(err)
	}
	if g := generation(t, db, "alice"); g != 1 {
		t.Fatalf("after the listener was killed: generation %d, want 1 (stale state served)", g)
	}
	waitTrusted(t, db)
	if g := generation(t, db, "alice"); g != 1 {
		t.Fatalf("after the listener came back: generation %d, want 1", g)
	}
	if !cached(db, "alice") {
		t.Fatal("memory is not used again after the listener came back")
	}
}

// An instance sees its own change at once: with its listener stopped and
// a lease far longer than the test, no notification of the change comes
// back, and memory stays trusted.
func TestSessionState_OwnChangeIsSeenAtOnce(t *testing.T) {
	t.Parallel()
	db := openTest(t, pgtest.Database(t), Options{Keys: []secrets.Key{mustKey(t)}, Lease: time.Minute, Heartbeat: testHeartbeat})
	waitTrusted(t, db)
	pid := listenerPID(t, db)
	generation(t, db, "alice")
	if !cached(db, "alice") {
		t.Fatal("alice's state is not in memory")
	}
	freeze(t, pid)
	if _, err := account.BumpGeneration(db, "alice"); err != nil {
		t.Fatal(err)
	}
	if g := generation(t, db, "alice"); g != 1 {
		t.Fatalf("generation %d right after this instance raised it, want 1", g)
	}
	if !db.cache.trusted() {
		t.Fatal("memory is no longer trusted: the check did not test it")
	}
}

func TestSessionState_FrozenListenerStopsTrustAfterTheLease(t *testing.T) {
	dsn := pgtest.Database(t)
	key := mustKey(t)
	db := openCached(t, dsn, key)
	pid := listenerPID(t, db)
	writer := openCached(t, dsn, key)
	generation(t, db, "alice")

	// Stop the listener's backend, as a hung server process would be.
	freeze(t, pid)
	frozen := time.Now()
	if _, err := account.BumpGeneration(writer, "alice"); err != nil {
		t.Fatal(err)
	}
	within(t, testLease+200*time.Millisecond, "the new generation is seen despite the frozen listener", func() bool {
		return generation(t, db, "alice") == 1
	})
	t.Logf("fresh state after %s with a lease of %s", time.Since(frozen), testLease)
}

func TestSessionState_DatabaseDownRefusesThenRecovers(t *testing.T) {
	t.Parallel()
	server, dsn := pgtest.Own(t) // stopped below: not the shared cluster
	db := openCached(t, dsn, mustKey(t))
	if _, err := account.BumpGeneration(db, "alice"); err != nil {
		t.Fatal(err)
	}
	generation(t, db, "alice")
	if err := server.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = server.Restart()
		}
	})
	within(t, testLease+time.Second, "requests refused while the database is down", func() bool {
		_, err := db.SessionState("alice")
		return err != nil
	})
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	within(t, 10*time.Second, "answers again after the database is back", func() bool {
		_, err := db.SessionState("alice")
		return err == nil
	})
	if g := generation(t, db, "alice"); g != 1 {
		t.Fatalf("generation %d after the restart, want 1", g)
	}
	waitTrusted(t, db)
}

// A change heard while a miss is being read keeps what the miss read out
// of memory: it was read before the change.
func TestSessionState_MissDoesNotStoreWhatAChangeMadeStale(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	key := mustKey(t)
	db, writer := openCached(t, dsn, key), openCached(t, dsn, key)
	db.testHookFill = func(user string) {
		db.testHookFill = nil
		if _, err := account.BumpGeneration(writer, user); err != nil {
			t.Error(err)
		}
		within(t, time.Second, "the change is heard", func() bool {
			_, ok := db.cache.entries.Load(user)
			return !ok
		})
	}
	if g := generation(t, db, "alice"); g != 0 {
		t.Fatalf("the miss read generation %d, want 0 (the state before the change)", g)
	}
	if cached(db, "alice") {
		t.Fatal("the miss stored a state that a change heard meanwhile made stale")
	}
	if g := generation(t, db, "alice"); g != 1 {
		t.Fatalf("generation %d after the change, want 1", g)
	}
}

// With the default lease, a stalled listener still lets a logout on
// another instance take effect within one second (SPEC §13).
func TestSessionState_FrozenListenerWithTheDefaultLeaseStaysWithinASecond(t *testing.T) {
	if DefaultLease >= time.Second {
		t.Fatalf("DefaultLease is %s: a stalled listener would trust its memory for longer than a second", DefaultLease)
	}
	dsn := pgtest.Database(t)
	key := mustKey(t)
	db := openTest(t, dsn, Options{Keys: []secrets.Key{key}})
	pid := listenerPID(t, db)
	writer := openCached(t, dsn, key)
	waitTrusted(t, db)
	generation(t, db, "alice")
	if !cached(db, "alice") {
		t.Fatal("alice's state is not in memory")
	}
	freeze(t, pid)
	frozen := time.Now()
	if _, err := account.BumpGeneration(writer, "alice"); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second-time.Since(frozen), "the new generation is seen within a second despite the frozen listener", func() bool {
		return generation(t, db, "alice") == 1
	})
	t.Logf("fresh state %s after the listener froze, with the default lease of %s", time.Since(frozen), DefaultLease)
}

// Any role that may connect can NOTIFY: a heartbeat under this instance's
// id with a time far in the future must not make it trust its memory any
// longer than its own heartbeats do.
func TestSessionState_ForgedHeartbeatsDoNotCount(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	db := openCached(t, dsn, mustKey(t))
	future := strconv.FormatInt(db.cache.now()+int64(time.Hour), 10)
	for _, payload := range []string{
		db.cache.id + ":" + future,
		db.cache.id + ":" + future + "/" + strings.Repeat("0", 64),
		db.cache.id + ":" + future + "/" + db.cache.beatMAC(db.cache.id+":1"), // another beat's MAC
	} {
		pgtest.Exec(t, dsn, "SELECT pg_notify('totp_auth.heartbeat', $1)", payload)
	}
	// Heartbeats of its own, sent after the forged ones, are heard after them.
	time.Sleep(4 * testHeartbeat)
	waitTrusted(t, db)
	if beat, now := db.cache.lastBeat.Load(), db.cache.now(); beat > now {
		t.Fatalf("a forged heartbeat counted: the newest heartbeat is %s in the future", time.Duration(beat-now))
	}
}

// Any role that may connect can LISTEN: the notifications name no user.
func TestSessionState_NotificationsCarryNoUserNames(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	key := mustKey(t)
	db := openCached(t, dsn, key)
	generation(t, db, "alice-the-admin")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spy, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close(context.Background())
	if _, err := spy.Exec(ctx, `LISTEN "totp_auth.account_changes"; LISTEN "totp_auth.accounts"; LISTEN "totp_auth.heartbeat"`); err != nil {
		t.Fatal(err)
	}
	if _, err := account.BumpGeneration(db, "alice-the-admin"); err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, dsn, "UPDATE totp_auth.accounts SET generation = 7 WHERE name = 'alice-the-admin'")
	// Notifications arrive in the order of their commits: once the two
	// changes are announced, everything the two sent has been seen.
	for changes := 0; changes < 2; {
		n, err := spy.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("%d of the 2 changes announced: %v", changes, err)
		}
		if strings.Contains(n.Payload, "alice") {
			t.Fatalf("a notification on %s names the user: %q", n.Channel, n.Payload)
		}
		if n.Channel == "totp_auth.account_changes" {
			changes++
		}
	}
	// The instance still hears whose state changed.
	within(t, time.Second, "the change typed in SQL reaches the cache", func() bool { return generation(t, db, "alice-the-admin") == 7 })
}
