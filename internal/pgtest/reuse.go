package pgtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// reuse keeps the databases tests are done with, emptied, for the tests
// that ask next. CREATE DATABASE copies its template, which costs a
// quarter of a second on a busy machine, for each of dozens of tests;
// emptying a database costs less, and happens while the next test runs.
type reuse struct {
	mu    sync.Mutex
	free  []string // emptied databases under names no test has seen
	query string   // the fingerprint's query (see fingerprintQuery)
	fresh string   // fingerprint of a database as CREATE DATABASE makes it
	err   error    // why there is no fresh, if taking it failed

	pending sync.WaitGroup // releases under way
	unused  int            // databases release did not keep
	why     error          // why release did not keep the first of them

	// admin is a session on the maintenance database, kept between
	// releases (a connection costs as much as emptying a database); nil
	// until the first release, or after an error.
	adminMu sync.Mutex
	admin   *pgx.Conn
}

// database returns the name of an empty database that no one else uses
// until release: an emptied one if there is one, else a new one.
func (s *Server) database() (string, error) {
	s.reuse.mu.Lock()
	if n := len(s.reuse.free); n > 0 {
		name := s.reuse.free[n-1]
		s.reuse.free = s.reuse.free[:n-1]
		s.reuse.mu.Unlock()
		return name, nil
	}
	known := s.reuse.fresh != ""
	s.reuse.mu.Unlock()
	name, err := s.createDatabase()
	if err != nil || known {
		return name, err
	}
	// The first new database is what release compares an emptied one
	// with. Should this fail, nothing is reused, which costs only time.
	query, fp, ferr := s.fingerprintNew(name)
	s.reuse.mu.Lock()
	if s.reuse.fresh == "" {
		s.reuse.query, s.reuse.fresh, s.reuse.err = query, fp, ferr
	}
	s.reuse.mu.Unlock()
	return name, nil
}

// releaseLater releases database name in the background, so that the
// next test need not wait: it takes a database released earlier, or makes
// one. A database release does not keep is counted, with the first
// reason, for Cleanup to tell.
func (s *Server) releaseLater(name string) {
	s.reuse.pending.Add(1)
	go func() {
		defer s.reuse.pending.Done()
		if err := s.release(name); err != nil {
			s.reuse.mu.Lock()
			if s.reuse.unused++; s.reuse.why == nil {
				s.reuse.why = fmt.Errorf("database %s: %w", name, err)
			}
			s.reuse.mu.Unlock()
		}
	}()
}

// settle waits for the releases under way.
func (s *Server) settle() { s.reuse.pending.Wait() }

// release empties database name once its test is over and keeps it, under
// a new name, for database. What a test could observe is gone: its
// sessions are ended (and with them their session advisory locks, LISTEN
// registrations and temporary objects), every schema is dropped, and the
// database is renamed, so that a client still holding the old connection
// string (a store a test left open, which reconnects) can never reach the
// next test. The database is kept only if it then matches a new one (see
// fingerprintQuery); otherwise it is left unused, and release says why.
func (s *Server) release(name string) error {
	s.reuse.mu.Lock()
	query, fresh, ferr := s.reuse.query, s.reuse.fresh, s.reuse.err
	s.reuse.mu.Unlock()
	if fresh == "" {
		return fmt.Errorf("no description of a new database to compare with: %v", ferr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	renamed := s.newName()
	if err := s.renameClosed(ctx, name, renamed); err != nil {
		return err
	}

	conn, err := pgx.Connect(ctx, s.DSN(renamed))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", renamed, err)
	}
	defer conn.Close(ctx)
	// Every schema goes but public when nothing is in it (each object
	// depends on its schema): a public made anew would lack the initial
	// privileges initdb recorded for it, so it is made anew only to be
	// found different below.
	rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace n
WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND (nspname <> 'public' OR EXISTS (SELECT FROM pg_depend
    WHERE refclassid = 'pg_namespace'::regclass AND refobjid = n.oid))
ORDER BY nspname`)
	if err != nil {
		return fmt.Errorf("list the schemas of %s: %w", renamed, err)
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list the schemas of %s: %w", renamed, err)
	}
	var empty strings.Builder
	for _, schema := range schemas {
		fmt.Fprintf(&empty, "DROP SCHEMA %s CASCADE;\n", pgx.Identifier{schema}.Sanitize())
		if schema == "public" {
			empty.WriteString("CREATE SCHEMA public AUTHORIZATION pg_database_owner;\n" +
				"GRANT USAGE ON SCHEMA public TO PUBLIC;\n" +
				"COMMENT ON SCHEMA public IS 'standard public schema';\n")
		}
	}
	if empty.Len() > 0 {
		if _, err := conn.Exec(ctx, empty.String()); err != nil {
			return fmt.Errorf("empty %s: %w", renamed, err)
		}
	}
	got, err := fingerprint(ctx, conn, query)
	if err != nil {
		return err
	}
	if got != fresh {
		return fmt.Errorf("emptied, %s still differs from a new database:\n  emptied: %s\n  new:     %s", renamed, got, fresh)
	}
	if err := conn.Close(ctx); err != nil {
		return fmt.Errorf("disconnect from %s: %w", renamed, err)
	}
	s.reuse.mu.Lock()
	s.reuse.free = append(s.reuse.free, renamed)
	s.reuse.mu.Unlock()
	return nil
}

// renameClosed ends every session on database name and renames it to
// renamed. No one may connect meanwhile (a client reconnecting at once
// would race the rename, which PostgreSQL refuses while anyone is
// connected).
func (s *Server) renameClosed(ctx context.Context, name, renamed string) (err error) {
	s.reuse.adminMu.Lock()
	defer s.reuse.adminMu.Unlock()
	if s.reuse.admin == nil {
		if s.reuse.admin, err = pgx.Connect(ctx, s.DSN("postgres")); err != nil {
			s.reuse.admin = nil
			return fmt.Errorf("connect to the maintenance database: %w", err)
		}
	}
	admin := s.reuse.admin
	defer func() {
		if err != nil {
			_ = admin.Close(ctx)
			s.reuse.admin = nil
		}
	}()
	oldName, newName := pgx.Identifier{name}.Sanitize(), pgx.Identifier{renamed}.Sanitize()
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+oldName+" ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("close %s to new sessions: %w", name, err)
	}
	for try := 1; ; try++ {
		if err := endSessions(ctx, admin, name); err != nil {
			return err
		}
		_, err := admin.Exec(ctx, "ALTER DATABASE "+oldName+" RENAME TO "+newName)
		if err == nil {
			break
		}
		if try == 3 {
			return fmt.Errorf("rename %s: %w", name, err)
		}
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+newName+" ALLOW_CONNECTIONS true"); err != nil {
		return fmt.Errorf("open %s to sessions again: %w", renamed, err)
	}
	return nil
}

// endSessions ends every session on database name and waits until they
// are gone (the server's own wait, in ALTER DATABASE, looks ten times a
// second).
func endSessions(ctx context.Context, admin *pgx.Conn, name string) error {
	const sessions = "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) "+sessions, name); err != nil {
		return fmt.Errorf("end the sessions on %s: %w", name, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left int
		if err := admin.QueryRow(ctx, "SELECT count(*) "+sessions, name).Scan(&left); err != nil {
			return fmt.Errorf("count the sessions on %s: %w", name, err)
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sessions on %s did not end within 5s", left, name)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// closeAdmin ends the session release keeps.
func (s *Server) closeAdmin() {
	s.reuse.adminMu.Lock()
	defer s.reuse.adminMu.Unlock()
	if s.reuse.admin != nil {
		_ = s.reuse.admin.Close(context.Background())
		s.reuse.admin = nil
	}
}

// fingerprintNew returns the fingerprint's query and the fingerprint of
// the new database name.
func (s *Server) fingerprintNew(name string) (query, fp string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN(name))
	if err != nil {
		return "", "", fmt.Errorf("connect to %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if query, err = fingerprintQuery(ctx, conn); err != nil {
		return "", "", err
	}
	fp, err = fingerprint(ctx, conn, query)
	return query, fp, err
}

// fingerprintQuery returns a query describing what a test can observe of
// a database beyond the rows of its schemas: how many objects each of the
// database's own catalogs holds (a schema, table, function, type,
// extension, event trigger, publication, large object, default privilege
// or comment left behind adds one), the settings, owner and privileges of
// the database, the public schema's owner, privileges and comment, and the
// other client sessions and locks on it.
func fingerprintQuery(ctx context.Context, conn *pgx.Conn) (string, error) {
	rows, err := conn.Query(ctx, `SELECT c.relname, EXISTS (SELECT FROM pg_attribute a
    WHERE a.attrelid = c.oid AND a.attname = 'oid' AND a.attnum > 0)
FROM pg_class c
WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r' AND NOT c.relisshared
ORDER BY c.relname`)
	if err != nil {
		return "", fmt.Errorf("list the catalogs: %w", err)
	}
	type catalog struct {
		Name   string
		HasOID bool
	}
	catalogs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[catalog])
	if err != nil {
		return "", fmt.Errorf("list the catalogs: %w", err)
	}
	var counts []string
	for _, c := range catalogs {
		// Objects made after initdb have OIDs from 16384
		// (FirstNormalObjectId) on; a catalog without OIDs describes
		// objects that have them, so only its size is compared, but for
		// the statistics PostgreSQL gathers by itself on its catalogs.
		where := ""
		switch {
		case c.HasOID:
			where = " WHERE oid >= 16384"
		case c.Name == "pg_statistic":
			where = " WHERE starelid >= 16384"
		}
		counts = append(counts, fmt.Sprintf("'%s=' || (SELECT count(*) FROM pg_catalog.%s%s)", c.Name, pgx.Identifier{c.Name}.Sanitize(), where))
	}
	return `WITH db AS (SELECT * FROM pg_database WHERE datname = current_database())
SELECT concat_ws(' ', ` + strings.Join(counts, " || ' ' ||\n  ") + `,
  '|', (SELECT format('owner=%s acl=%s connlimit=%s allowconn=%s template=%s tablespace=%s',
      datdba::regrole, datacl, datconnlimit, datallowconn, datistemplate, dattablespace) FROM db),
  (SELECT format('settings=%s', count(*)) FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM db)),
  (SELECT format('comments=%s', count(*)) FROM pg_shdescription
    WHERE classoid = 'pg_database'::regclass AND objoid = (SELECT oid FROM db)),
  (SELECT format('labels=%s', count(*)) FROM pg_shseclabel
    WHERE classoid = 'pg_database'::regclass AND objoid = (SELECT oid FROM db)),
  '|', (SELECT format('public: owner=%s acl=%s comment=%s', nspowner::regrole, nspacl, obj_description(oid, 'pg_namespace'))
    FROM pg_namespace WHERE nspname = 'public'),
  '|', (SELECT format('sessions=%s', count(*)) FROM pg_stat_activity
    WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()),
  (SELECT format('locks=%s', count(*)) FROM pg_locks
    WHERE database = (SELECT oid FROM db) AND pid IS DISTINCT FROM pg_backend_pid()))`, nil
}

// fingerprint runs query on conn.
func fingerprint(ctx context.Context, conn *pgx.Conn, query string) (string, error) {
	var fp string
	if err := conn.QueryRow(ctx, query).Scan(&fp); err != nil {
		return "", fmt.Errorf("describe the database: %w", err)
	}
	return fp, nil
}
