package caddymodule

import (
	"fmt"
	"io"
	"strings"

	"github.com/totp-auth/totp_auth/storage/secrets"
)

// This file holds what operators do that only the bbolt file allows: key
// rotation and backup. The user operations work on any store and live in
// package operator. The admin API calls these on the database a running
// Caddy holds; the `caddy totp-auth` commands call them on a database they
// opened themselves when Caddy is not running.

// rotationReport answers `caddy totp-auth rotate-key`.
type rotationReport struct {
	DB string `json:"db"`
	// Rotated is false when the configuration names the key: then the
	// new key must go into the configuration first (see rotationSteps).
	Rotated  bool   `json:"rotated"`
	OldKeyID string `json:"old_key_id"`
	KeyID    string `json:"key_id,omitempty"`
	Message  string `json:"message,omitempty"`
}

// rotateKey re-encrypts every secret under a new key when the key lives
// in the key file beside the database. The files change in an order that
// lets a restart at any moment open the database:
//
//  1. the current key is copied to <key file>.<its id>, which Caddy
//     accepts as an older key;
//  2. the new key replaces the key file (a restart now re-encrypts at
//     open, accepting the retired key);
//  3. one transaction re-encrypts every secret under the new key.
//
// Every retired key stays beside the key file until the operator removes
// it: a backup made while it was current opens only with it.
//
// When a configuration names the key, nothing is changed: the running
// process cannot change the configuration, and a restart with the old
// configuration would find secrets under a key it does not know.
func (d *database) rotateKey() (rotationReport, error) {
	d.keyMu.Lock()
	defer d.keyMu.Unlock()
	old := d.current
	r := rotationReport{DB: d.path, OldKeyID: old.ID()}
	file := d.keyFile()
	if file == "" {
		return r, nil
	}
	next, err := secrets.NewKey()
	if err != nil {
		return r, err
	}
	if err := replaceKeyFile(retiredKeyFile(file, old), old); err != nil {
		return r, err
	}
	if err := replaceKeyFile(file, next); err != nil {
		return r, err
	}
	if err := d.db.RotateKey(next); err != nil {
		// The database is still under the old key. Put it back in the key
		// file; if that fails too, the next start re-encrypts under the
		// new key, accepting the retired one.
		if rerr := replaceKeyFile(file, old); rerr != nil {
			return r, fmt.Errorf("%w (and putting the old key back into %s failed: %v; the next start completes the rotation)", err, file, rerr)
		}
		return r, err
	}
	d.current = next
	r.Rotated, r.KeyID = true, next.ID()
	retired, err := retiredKeys(file)
	if err != nil {
		return r, err
	}
	r.Message = fmt.Sprintf("Re-encrypted every secret under a new key (id %s, was %s); the new key is in %s. "+
		"Every retired key stays beside it until you remove it. A backup opens only with the key that was current when it was made "+
		"(`caddy totp-auth backup` names it): %s.",
		next.ID(), old.ID(), file, backupKeys(file, next, retired))
	return r, nil
}

// backupKeys says which backups need which key: the current one for
// backups from now on, each retired key for those made while it was
// current (retired is the most recent first).
func backupKeys(file string, current secrets.Key, retired []retiredKey) string {
	parts := []string{fmt.Sprintf("from now on, key %s in %s", current.ID(), file)}
	for i, k := range retired {
		when := "made before now"
		if i > 0 {
			when = "made before " + k.retired.UTC().Format("2006-01-02 15:04 UTC")
		}
		if i+1 < len(retired) {
			when += " and after " + retired[i+1].retired.UTC().Format("2006-01-02 15:04 UTC")
		}
		parts = append(parts, fmt.Sprintf("%s, key %s in %s", when, k.key.ID(), k.file))
	}
	return strings.Join(parts, "; ")
}

// rotationSteps tells an operator whose configuration names the key how
// to rotate to next.
func rotationSteps(db, currentKeyID, next string) string {
	return fmt.Sprintf(`Nothing was changed: encryption_key is set in your configuration, so the new key goes there first.

1. In the totp_auth block for %s, set the new key and keep the current one (id %s) as an old key:

       encryption_key      %s
       old_encryption_keys <the current encryption_key value>

   (With {env.…} placeholders: put the new key in a new variable and restart instead of reloading.)
2. Run `+"`caddy reload`"+` (or restart Caddy). Loading the new key re-encrypts every secret under it in one
   transaction; both keys are accepted until then, so a restart at any moment works.
3. Once Caddy runs with the new key, remove old_encryption_keys. Backups made before the rotation need the old key.
`, db, currentKeyID, next)
}

// backupReport answers `caddy totp-auth backup`.
type backupReport struct {
	DB    string `json:"db"`
	Bytes int64  `json:"bytes"`
	// KeyID names the key a restore needs.
	KeyID string `json:"key_id"`
	// KeyFile is where that key is, "" if the configuration names it.
	KeyFile string `json:"key_file,omitempty"`
}

// backup writes a consistent copy of the database to w while it stays in
// use. begin, if not nil, learns which key the copy needs before the first
// byte is written.
func (d *database) backup(w io.Writer, begin func(backupReport)) (backupReport, error) {
	d.keyMu.RLock()
	defer d.keyMu.RUnlock()
	r := backupReport{DB: d.path, KeyID: d.current.ID(), KeyFile: d.keyFile()}
	if begin != nil {
		begin(r)
	}
	n, err := d.db.Backup(w)
	if err != nil {
		return backupReport{}, err
	}
	r.Bytes = n
	return r, nil
}
