package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// What start-up and reload need, without reading every account (SPEC §6):
// the names a `user` line marked are found through the partial index
// accounts_config_users, and the table password_models counts the
// accounts with each kind of password hash, kept by UpdateAccount in the
// transaction that saves the account.

// countModels moves one account's password hash from the model was to is
// in password_models. The rows change in the order of their models, so
// that two transactions moving accounts between the same two models
// cannot deadlock.
func countModels(ctx context.Context, tx pgx.Tx, was, is string) error {
	if was == is {
		return nil
	}
	type change struct {
		model string
		delta int
	}
	changes := []change{{was, -1}, {is, +1}}
	if is < was {
		changes[0], changes[1] = changes[1], changes[0]
	}
	for _, c := range changes {
		if c.model == "" {
			continue
		}
		var err error
		if c.delta > 0 {
			_, err = tx.Exec(ctx, `INSERT INTO password_models (model, accounts) VALUES ($1, 1)
				ON CONFLICT (model) DO UPDATE SET accounts = password_models.accounts + 1`, c.model)
		} else {
			err = uncountModel(ctx, tx, c.model)
		}
		if err != nil {
			return fmt.Errorf("count password hashes of one kind: %w", err)
		}
	}
	return nil
}

// uncountModel takes one account off model's count, deleting the row with
// the last one. The row is locked first, so two transactions taking the
// last two accounts off it queue instead of both decrementing.
func uncountModel(ctx context.Context, tx pgx.Tx, model string) error {
	var n int
	err := tx.QueryRow(ctx, "SELECT accounts FROM password_models WHERE model = $1 FOR UPDATE", model).Scan(&n)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return err
	case n <= 1:
		_, err = tx.Exec(ctx, "DELETE FROM password_models WHERE model = $1", model)
	default:
		_, err = tx.Exec(ctx, "UPDATE password_models SET accounts = accounts - 1 WHERE model = $1", model)
	}
	return err
}

// modelOf is the password_models entry of a row; "" for none.
func modelOf(r accountRow) string {
	if !r.Stored {
		return ""
	}
	return account.HashModel(r.PasswordHash)
}

// countAllModels fills password_models from every account, once, when the
// schema moves to version 4.
func countAllModels(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, "SELECT password_hash FROM accounts WHERE stored AND password_hash IS NOT NULL")
	if err != nil {
		return fmt.Errorf("read password hashes: %w", err)
	}
	counts := make(map[string]int)
	for rows.Next() {
		var hash []byte
		if err := rows.Scan(&hash); err != nil {
			rows.Close()
			return fmt.Errorf("read password hashes: %w", err)
		}
		if m := account.HashModel(hash); m != "" {
			counts[m]++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read password hashes: %w", err)
	}
	for model, n := range counts {
		if _, err := tx.Exec(ctx, "INSERT INTO password_models (model, accounts) VALUES ($1, $2)", model, n); err != nil {
			return fmt.Errorf("count password hashes of one kind: %w", err)
		}
	}
	return nil
}

// ConfigUsers implements account.Store.
func (db *DB) ConfigUsers() ([]string, error) {
	return db.strings("list the names of `user` lines", "SELECT name FROM accounts WHERE config_user ORDER BY name")
}

// PasswordModels implements account.Store.
func (db *DB) PasswordModels() ([]string, error) {
	return db.strings("list the kinds of password hashes", "SELECT model FROM password_models")
}

// strings runs a query of one text column and returns its rows.
func (db *DB) strings(what, sql string) ([]string, error) {
	ctx, cancel := db.op()
	defer cancel()
	rows, err := db.pool.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return list, nil
}
