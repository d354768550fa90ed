package postgres

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// The account changes of gateway.Store, each one transaction on the
// user's locked row.

// PendingEnrollment implements gateway.Store.
func (db *DB) PendingEnrollment(user string, now time.Time, create func() (gateway.Enrollment, error)) (gateway.Enrollment, error) {
	var e gateway.Enrollment
	err := db.updateAccount(user, func(ctx context.Context, tx pgx.Tx, r *accountRow) error {
		if r.PendingSecret != nil && now.UnixNano() < r.PendingExpires {
			secret, err := db.keys.Load().Open(secrets.PurposePendingSecret, user, r.PendingSecret)
			if err != nil {
				return fmt.Errorf("decrypt pending enrollment: %w", err)
			}
			e = gateway.Enrollment{Secret: string(secret), Expires: time.Unix(0, r.PendingExpires)}
			return errUnchanged
		}
		fresh, err := create()
		if err != nil {
			return fmt.Errorf("create enrollment: %w", err)
		}
		if r.PendingSecret, err = db.seal(ctx, tx, secrets.PurposePendingSecret, user, []byte(fresh.Secret)); err != nil {
			return fmt.Errorf("encrypt pending enrollment: %w", err)
		}
		r.PendingExpires = fresh.Expires.UnixNano()
		e = gateway.Enrollment{Secret: fresh.Secret, Expires: time.Unix(0, r.PendingExpires)}
		return nil
	})
	if err != nil {
		return gateway.Enrollment{}, fmt.Errorf("pending enrollment of %q: %w", user, err)
	}
	return e, nil
}

// ConfirmEnrollment implements gateway.Store.
func (db *DB) ConfirmEnrollment(user, secret string, step int64, backupHashes [][]byte, now time.Time) error {
	err := db.updateAccount(user, func(ctx context.Context, tx pgx.Tx, r *accountRow) error {
		if r.PendingSecret == nil || now.UnixNano() >= r.PendingExpires || secret == "" {
			return gateway.ErrNoEnrollment
		}
		pending, err := db.keys.Load().Open(secrets.PurposePendingSecret, user, r.PendingSecret)
		if err != nil {
			return fmt.Errorf("decrypt pending enrollment: %w", err)
		}
		if subtle.ConstantTimeCompare(pending, []byte(secret)) != 1 {
			return gateway.ErrNoEnrollment
		}
		if r.TOTPSecret, err = db.seal(ctx, tx, secrets.PurposeTOTPSecret, user, pending); err != nil {
			return fmt.Errorf("encrypt totp secret: %w", err)
		}
		r.LastStep = step
		r.BackupCodes = cloneCodes(backupHashes)
		r.MustRegenerate = false
		r.PendingSecret, r.PendingExpires = nil, 0
		return nil
	})
	return wrapUnlessSentinel(err, "confirm enrollment of %q", user)
}

// AcceptStep implements gateway.Store.
func (db *DB) AcceptStep(user string, step int64) error {
	err := db.updateAccount(user, func(_ context.Context, _ pgx.Tx, r *accountRow) error {
		if step <= r.LastStep {
			return gateway.ErrStepReused
		}
		r.LastStep = step
		return nil
	})
	return wrapUnlessSentinel(err, "accept totp step of %q", user)
}

// UseBackupCode implements gateway.Store.
func (db *DB) UseBackupCode(user string, hash []byte) error {
	err := db.updateAccount(user, func(_ context.Context, _ pgx.Tx, r *accountRow) error {
		if !r.Stored {
			return gateway.ErrCodeUsed
		}
		left, ok := gateway.SpendBackupCode(r.BackupCodes, hash)
		if !ok {
			return gateway.ErrCodeUsed
		}
		r.BackupCodes, r.MustRegenerate = left, true
		return nil
	})
	return wrapUnlessSentinel(err, "use backup code of %q", user)
}

// ReplaceBackupCodes implements gateway.Store.
func (db *DB) ReplaceBackupCodes(user string, backupHashes [][]byte) error {
	err := db.updateAccount(user, func(_ context.Context, _ pgx.Tx, r *accountRow) error {
		r.BackupCodes = cloneCodes(backupHashes)
		r.MustRegenerate = false
		return nil
	})
	return wrapUnlessSentinel(err, "replace backup codes of %q", user)
}

// DisableTOTP implements gateway.Store.
func (db *DB) DisableTOTP(user string) error {
	err := db.updateAccount(user, func(_ context.Context, _ pgx.Tx, r *accountRow) error {
		if !r.Stored {
			return errUnchanged
		}
		disable(r)
		return nil
	})
	return wrapUnlessSentinel(err, "disable totp of %q", user)
}

func disable(r *accountRow) {
	r.TOTPSecret = nil
	r.BackupCodes = nil
	r.PendingSecret, r.PendingExpires = nil, 0
	r.MustRegenerate = false
}

// BumpGeneration implements gateway.Store.
func (db *DB) BumpGeneration(user string) (uint64, error) {
	var gen uint64
	err := db.updateAccount(user, func(_ context.Context, _ pgx.Tx, r *accountRow) error {
		r.Generation++
		gen = r.Generation
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("raise session generation of %q: %w", user, err)
	}
	return gen, nil
}

// RevokeSession implements gateway.Store.
func (db *DB) RevokeSession(user string, id uint64, until, now time.Time) error {
	err := db.updateAccount(user, func(_ context.Context, _ pgx.Tx, r *accountRow) error {
		revs, full := gateway.AddRevocation(r.Revoked, id, until, now)
		if full {
			r.Generation++
		}
		r.Revoked = revs
		return nil
	})
	return wrapUnlessSentinel(err, "end session of %q", user)
}

func cloneCodes(codes [][]byte) [][]byte {
	if len(codes) == 0 {
		return nil
	}
	out := make([][]byte, len(codes))
	for i, c := range codes {
		out[i] = bytes.Clone(c)
	}
	return out
}

// wrapUnlessSentinel adds context to internal failures but returns the
// gateway's sentinel errors as they are, since the flow acts on them.
func wrapUnlessSentinel(err error, format string, args ...any) error {
	switch err {
	case nil, gateway.ErrStepReused, gateway.ErrCodeUsed, gateway.ErrNoEnrollment, gateway.ErrNotFound:
		return err
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
