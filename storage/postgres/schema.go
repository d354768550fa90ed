package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/storage/secrets"
)

// migrations[i] moves the schema from version i to i+1. Append to it, never
// change an entry: instances of the previous release may still run.
var migrations = []string{
	// 1: the tables, and the trigger that tells every instance which
	// account changed. It stays silent for changes no session check reads
	// (an accepted time step, a pending enrollment), since every NOTIFY
	// takes a cluster-wide lock at commit.
	`
CREATE TABLE meta (
	name  text PRIMARY KEY,
	value bytea NOT NULL
);
CREATE TABLE accounts (
	name            text PRIMARY KEY,
	stored          boolean NOT NULL DEFAULT false,
	password_hash   bytea,
	totp_secret     bytea,
	last_step       bigint NOT NULL DEFAULT 0,
	backup_codes    bytea[] NOT NULL DEFAULT '{}',
	must_regenerate boolean NOT NULL DEFAULT false,
	generation      bigint NOT NULL DEFAULT 0,
	pending_secret  bytea,
	pending_expires bigint NOT NULL DEFAULT 0,
	revoked         jsonb NOT NULL DEFAULT '[]'
);
COMMENT ON COLUMN accounts.stored IS 'false: only the generation is kept, so a removed user''s sessions stay ended';
COMMENT ON COLUMN accounts.totp_secret IS 'AES-256-GCM, sealed by package secrets';
COMMENT ON COLUMN accounts.pending_expires IS 'Unix nanoseconds';
CREATE TABLE counters (
	key          text PRIMARY KEY,
	window_start bigint NOT NULL,
	locked_until bigint NOT NULL,
	failures     integer NOT NULL,
	in_flight    integer NOT NULL
);
CREATE TABLE session_keys (
	id        integer PRIMARY KEY CHECK (id = 1),
	hash_key  bytea NOT NULL,
	block_key bytea NOT NULL
);
CREATE FUNCTION notify_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' AND OLD.name = NEW.name
		AND OLD.stored = NEW.stored
		AND OLD.generation = NEW.generation
		AND OLD.must_regenerate = NEW.must_regenerate
		AND (OLD.totp_secret IS NULL) = (NEW.totp_secret IS NULL)
		AND (OLD.password_hash IS NULL) = (NEW.password_hash IS NULL)
		AND OLD.revoked = NEW.revoked THEN
		RETURN NULL;
	END IF;
	IF TG_OP <> 'INSERT' THEN
		PERFORM pg_notify(TG_TABLE_SCHEMA || '.accounts', OLD.name);
	END IF;
	IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR OLD.name <> NEW.name) THEN
		PERFORM pg_notify(TG_TABLE_SCHEMA || '.accounts', NEW.name);
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER accounts_notify AFTER INSERT OR UPDATE OR DELETE ON accounts
	FOR EACH ROW EXECUTE FUNCTION notify_account();
CREATE FUNCTION notify_accounts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify(TG_TABLE_SCHEMA || '.accounts', '');
	RETURN NULL;
END
$$;
CREATE TRIGGER accounts_truncate_notify AFTER TRUNCATE ON accounts
	FOR EACH STATEMENT EXECUTE FUNCTION notify_accounts_truncated();
`,
	// 2: what sessions must know of recovery, re-enrollment and `user`
	// lines (SPEC §4 rules 18, 20, 21). No session check reads them, so
	// the trigger stays as it is.
	`
ALTER TABLE accounts
	ADD COLUMN recovery_session bigint NOT NULL DEFAULT 0,
	ADD COLUMN pending_session  bigint NOT NULL DEFAULT 0,
	ADD COLUMN config_user      boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN accounts.recovery_session IS 'the session that spent the last backup code';
COMMENT ON COLUMN accounts.pending_session IS 'the session a pending enrollment belongs to; 0 at first sign-in';
COMMENT ON COLUMN accounts.config_user IS 'a user line of a configuration in force defines the user';
`,
	// 3: no user name in clear in a notification (SPEC §13): any role that
	// may connect can LISTEN. A change is announced on <schema>.account_changes
	// as the hex SHA-256 of a random key kept in meta (which only roles
	// granted the tables can read) and the name; instances key their memory
	// by it. <schema>.accounts, which instances of the previous release
	// listen on, hears an empty payload: they drop all they remember,
	// which costs them reads but never serves them stale state.
	`
INSERT INTO meta (name, value)
	VALUES ('notify_key', uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
	ON CONFLICT (name) DO NOTHING;
CREATE OR REPLACE FUNCTION notify_account() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	k bytea;
BEGIN
	IF TG_OP = 'UPDATE' AND OLD.name = NEW.name
		AND OLD.stored = NEW.stored
		AND OLD.generation = NEW.generation
		AND OLD.must_regenerate = NEW.must_regenerate
		AND (OLD.totp_secret IS NULL) = (NEW.totp_secret IS NULL)
		AND (OLD.password_hash IS NULL) = (NEW.password_hash IS NULL)
		AND OLD.revoked = NEW.revoked THEN
		RETURN NULL;
	END IF;
	EXECUTE format('SELECT value FROM %I.meta WHERE name = $1', TG_TABLE_SCHEMA) INTO k USING 'notify_key';
	IF TG_OP <> 'INSERT' THEN
		PERFORM pg_notify(TG_TABLE_SCHEMA || '.account_changes', encode(sha256(k || convert_to(OLD.name, 'UTF8')), 'hex'));
	END IF;
	IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR OLD.name <> NEW.name) THEN
		PERFORM pg_notify(TG_TABLE_SCHEMA || '.account_changes', encode(sha256(k || convert_to(NEW.name, 'UTF8')), 'hex'));
	END IF;
	PERFORM pg_notify(TG_TABLE_SCHEMA || '.accounts', '');
	RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION notify_accounts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify(TG_TABLE_SCHEMA || '.account_changes', '');
	PERFORM pg_notify(TG_TABLE_SCHEMA || '.accounts', '');
	RETURN NULL;
END
$$;
`,
	// 4: what start-up and reload read instead of every account (SPEC §6):
	// the names `user` lines marked, through a partial index, and a count
	// of the accounts with each kind of password hash (index.go), which
	// migrate fills once from the accounts.
	`
CREATE INDEX accounts_config_users ON accounts (name) WHERE config_user;
CREATE TABLE password_models (
	model    text PRIMARY KEY,
	accounts integer NOT NULL CHECK (accounts > 0)
);
COMMENT ON TABLE password_models IS 'accounts per password hash algorithm and parameters, salt and digest zeroed';
`,
	// 5: app passwords (SPEC §15). Requests with one check app_passwords
	// from memory, so the trigger now speaks when it changes; their last
	// use, written at most once a minute each, stays silent.
	`
ALTER TABLE accounts
	ADD COLUMN app_passwords    jsonb NOT NULL DEFAULT '[]',
	ADD COLUMN app_password_use jsonb NOT NULL DEFAULT '{}';
COMMENT ON COLUMN accounts.app_passwords IS 'keyed hashes and scopes of app passwords, never their values';
COMMENT ON COLUMN accounts.app_password_use IS 'last use of each app password by id: {"at", "ip"}';
CREATE OR REPLACE FUNCTION notify_account() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	k bytea;
BEGIN
	IF TG_OP = 'UPDATE' AND OLD.name = NEW.name
		AND OLD.stored = NEW.stored
		AND OLD.generation = NEW.generation
		AND OLD.must_regenerate = NEW.must_regenerate
		AND (OLD.totp_secret IS NULL) = (NEW.totp_secret IS NULL)
		AND (OLD.password_hash IS NULL) = (NEW.password_hash IS NULL)
		AND OLD.revoked = NEW.revoked
		AND OLD.app_passwords = NEW.app_passwords THEN
		RETURN NULL;
	END IF;
	EXECUTE format('SELECT value FROM %I.meta WHERE name = $1', TG_TABLE_SCHEMA) INTO k USING 'notify_key';
	IF TG_OP <> 'INSERT' THEN
		PERFORM pg_notify(TG_TABLE_SCHEMA || '.account_changes', encode(sha256(k || convert_to(OLD.name, 'UTF8')), 'hex'));
	END IF;
	IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR OLD.name <> NEW.name) THEN
		PERFORM pg_notify(TG_TABLE_SCHEMA || '.account_changes', encode(sha256(k || convert_to(NEW.name, 'UTF8')), 'hex'));
	END IF;
	PERFORM pg_notify(TG_TABLE_SCHEMA || '.accounts', '');
	RETURN NULL;
END
$$;
`,
	// 6: the registry of sessions and remembered devices (SPEC §16). A
	// session is ended through revoked or generation, which the trigger
	// watches; these are only listed, and their last-seen writes must
	// not wake every instance, so the trigger of 5 stays as it is. The
	// columns may exist already when migrations are replayed from 3.
	`
ALTER TABLE accounts
	ADD COLUMN IF NOT EXISTS sessions jsonb NOT NULL DEFAULT '[]',
	ADD COLUMN IF NOT EXISTS devices  jsonb NOT NULL DEFAULT '[]';
COMMENT ON COLUMN accounts.sessions IS 'the sessions in force, as the account page lists them';
COMMENT ON COLUMN accounts.devices IS 'browsers remembered at the second factor';
`,
	// 7: passkeys (SPEC §14). Whether a user has one is part of what
	// sessions check (a second factor), so the trigger now also speaks
	// when the list becomes empty or stops being so; a passkey's sign-in
	// (its counter, a spent challenge) stays silent.
	`
ALTER TABLE accounts
	ADD COLUMN IF NOT EXISTS passkeys         jsonb NOT NULL DEFAULT '[]',
	ADD COLUMN IF NOT EXISTS spent_challenges jsonb NOT NULL DEFAULT '[]';
COMMENT ON COLUMN accounts.passkeys IS 'WebAuthn credentials: public keys, counters and flags; no secret';
COMMENT ON COLUMN accounts.spent_challenges IS 'answered WebAuthn challenges, kept until their ceremony expires';
CREATE OR REPLACE FUNCTION notify_account() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	k bytea;
BEGIN
	IF TG_OP = 'UPDATE' AND OLD.name = NEW.name
		AND OLD.stored = NEW.stored
		AND OLD.generation = NEW.generation
		AND OLD.must_regenerate = NEW.must_regenerate
		AND (OLD.totp_secret IS NULL) = (NEW.totp_secret IS NULL)
		AND (OLD.password_hash IS NULL) = (NEW.password_hash IS NULL)
		AND (jsonb_array_length(OLD.passkeys) = 0) = (jsonb_array_length(NEW.passkeys) = 0)
		AND OLD.revoked = NEW.revoked
		AND OLD.app_passwords = NEW.app_passwords THEN
		RETURN NULL;
	END IF;
	EXECUTE format('SELECT value FROM %I.meta WHERE name = $1', TG_TABLE_SCHEMA) INTO k USING 'notify_key';
	IF TG_OP <> 'INSERT' THEN
		PERFORM pg_notify(TG_TABLE_SCHEMA || '.account_changes', encode(sha256(k || convert_to(OLD.name, 'UTF8')), 'hex'));
	END IF;
	IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR OLD.name <> NEW.name) THEN
		PERFORM pg_notify(TG_TABLE_SCHEMA || '.account_changes', encode(sha256(k || convert_to(NEW.name, 'UTF8')), 'hex'));
	END IF;
	PERFORM pg_notify(TG_TABLE_SCHEMA || '.accounts', '');
	RETURN NULL;
END
$$;
`,
}

// SchemaVersion is the schema this code reads and writes.
var SchemaVersion = len(migrations)

// Advisory lock classes (the first half of the two-key form, whose second
// half hashes the schema). Counters lock a 64-bit hash of schema and key
// instead (counters.go).
const (
	lockMigrate  = 0x746f7470 // "totp"
	lockPruning  = 0x746f7472
	lockRotation = 0x746f7473
)

// migrate creates or updates the schema and checks the key, in one
// transaction under an advisory lock, so instances starting at once on an
// empty database wait for the first instead of racing it.
func (db *DB) migrate(ctx context.Context, current secrets.Key) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", lockMigrate, db.schema); err != nil {
			return fmt.Errorf("wait for the schema lock: %w", err)
		}
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{db.schema}.Sanitize()); err != nil {
			return fmt.Errorf("create schema %s: %w", db.schema, err)
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)"); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		var version int
		err := tx.QueryRow(ctx, "SELECT version FROM schema_version").Scan(&version)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, "INSERT INTO schema_version VALUES (0)"); err != nil {
				return fmt.Errorf("write schema version: %w", err)
			}
		case err != nil:
			return fmt.Errorf("read schema version: %w", err)
		case version > SchemaVersion:
			return fmt.Errorf("schema %s is at version %d, newer than this build understands (%d): "+
				"run the totp_auth version that wrote it on every instance, or restore a backup made by this one", db.schema, version, SchemaVersion)
		}
		for v := version; v < SchemaVersion; v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migrate schema %s to version %d: %w", db.schema, v+1, err)
			}
			if v+1 == 4 {
				if err := countAllModels(ctx, tx); err != nil {
					return fmt.Errorf("migrate schema %s to version 4: %w", db.schema, err)
				}
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE schema_version SET version = $1", SchemaVersion); err != nil {
			return fmt.Errorf("write schema version: %w", err)
		}
		return db.checkKey(ctx, tx, current)
	})
}

// checkKey writes the canary on a new database, refuses a key that does
// not open the existing one, and re-encrypts everything under current when
// the canary names another configured key.
func (db *DB) checkKey(ctx context.Context, tx pgx.Tx, current secrets.Key) error {
	keys := db.keys.Load()
	to := current.KeyID()
	canary, err := readMeta(ctx, tx, "canary")
	if err != nil {
		return err
	}
	if canary == nil {
		return writeCanary(ctx, tx, keys, to)
	}
	from, err := keys.CheckCanary(canary)
	if err != nil {
		return err
	}
	if from == to {
		return nil
	}
	return reseal(ctx, tx, keys, to)
}

func readMeta(ctx context.Context, tx pgx.Tx, name string) ([]byte, error) {
	var v []byte
	err := tx.QueryRow(ctx, "SELECT value FROM meta WHERE name = $1", name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return v, nil
}

func writeCanary(ctx context.Context, tx pgx.Tx, keys *secrets.Keyring, id secrets.KeyID) error {
	sealed, err := keys.Seal(id, secrets.PurposeCanary, "", secrets.CanaryText)
	if err != nil {
		return fmt.Errorf("seal key canary: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO meta (name, value) VALUES ('canary', $1)
		ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, sealed)
	if err != nil {
		return fmt.Errorf("write key canary: %w", err)
	}
	return nil
}

// currentKey returns the id of the key new ciphertexts in tx are sealed
// under: the key of the committed canary, which every instance follows,
// so an instance configured with the old key as current still seals under
// the new one once another instance rotated (it must know both).
func currentKey(ctx context.Context, tx pgx.Tx) (secrets.KeyID, error) {
	canary, err := readMeta(ctx, tx, "canary")
	if err != nil {
		return secrets.KeyID{}, err
	}
	id, err := secrets.SealedKeyID(canary)
	if err != nil {
		return id, fmt.Errorf("read key canary: %w", err)
	}
	return id, nil
}
