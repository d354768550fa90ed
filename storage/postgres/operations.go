package postgres

import (
	"errors"
	"io"
)

// What operators do to accounts and counters works on any store (package
// internal/operator), and every change of an account goes through the
// accounts table, whose trigger tells every running instance. Key rotation
// is in keys.go.

// Backup is not offered for PostgreSQL: its own tools do it better.
func (db *DB) Backup(io.Writer) (int64, error) {
	return 0, errors.New("a PostgreSQL database is backed up with PostgreSQL's tools: run `pg_dump --schema=" + db.schema + "` against it")
}
