package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/storage"
)

// This file holds what operators do to a database. The admin API calls
// these on the database a running Caddy holds; the `caddy totp-auth`
// commands call them on a database they opened themselves when Caddy is
// not running. Either way each operation is written once, here, and so
// are the sentences that report it.

// opError is an operation refused for a reason the operator can fix.
type opError struct {
	// status is what the admin API answers with.
	status int
	msg    string
}

func (e *opError) Error() string { return e.msg }

func refuse(status int, format string, args ...any) error {
	return &opError{status: status, msg: fmt.Sprintf(format, args...)}
}

// Sources of a user in a listing.
const (
	// sourceConfig is a `user` line in the configuration.
	sourceConfig = "Caddyfile"
	// sourceDatabase is a password stored with `caddy totp-auth user add`.
	sourceDatabase = "database"
	// sourceNone is state left in the database for a name that no
	// configuration defines any more (it cannot sign in).
	sourceNone = "none"
	// sourceUnknown is state without a password, listed while Caddy is
	// stopped: a `user` line presumably defines the user.
	sourceUnknown = "Caddyfile?"
)

// userReport is one user as `caddy totp-auth user list` shows it. It
// carries no secret and no hash.
type userReport struct {
	Name string `json:"name"`
	// Source is Caddyfile, database, none, or Caddyfile? (see the
	// source constants).
	Source            string     `json:"source"`
	TwoFactor         bool       `json:"two_factor"`
	EnrollmentPending bool       `json:"enrollment_pending,omitempty"`
	BackupCodesLeft   int        `json:"backup_codes_left"`
	MustRegenerate    bool       `json:"must_regenerate_backup_codes,omitempty"`
	LockedUntil       *time.Time `json:"locked_until,omitempty"`
}

// lockReport is a lock on something that is not a user.
type lockReport struct {
	Name        string    `json:"name"`
	LockedUntil time.Time `json:"locked_until"`
}

// userListing answers `caddy totp-auth user list`.
type userListing struct {
	DB string `json:"db"`
	// SourcesKnown is false when the listing was made without the
	// configuration (Caddy stopped): users defined only by `user` lines
	// and never signed in are then missing.
	SourcesKnown bool         `json:"sources_known"`
	Users        []userReport `json:"users"`
	// LockedClientIPs are client IPs locked for too many failures.
	LockedClientIPs []lockReport `json:"locked_client_ips,omitempty"`
	// LockedUnknownNames are names that are no user but were guessed
	// often enough to be locked.
	LockedUnknownNames []lockReport `json:"locked_unknown_names,omitempty"`
}

// opReport answers every operation that changes something.
type opReport struct {
	DB      string `json:"db"`
	Message string `json:"message"`
}

// listUsers lists every user the database or the configuration knows.
func (d *database) listUsers(now time.Time) (userListing, error) {
	accounts, err := d.db.Accounts()
	if err != nil {
		return userListing{}, err
	}
	locks, err := d.db.Locks(now)
	if err != nil {
		return userListing{}, err
	}
	config, known := d.configUsers()
	out := userListing{DB: d.path, SourcesKnown: known, Users: []userReport{}}

	byName := make(map[string]*userReport)
	add := func(name string) *userReport {
		u := &userReport{Name: name}
		byName[name] = u
		return u
	}
	for _, a := range accounts {
		u := add(a.Name)
		u.TwoFactor = a.TOTPEnabled
		u.EnrollmentPending = a.EnrollmentPending && !a.TOTPEnabled
		u.BackupCodesLeft = a.BackupCodesLeft
		u.MustRegenerate = a.MustRegenerate
		switch {
		case config[a.Name]:
			u.Source = sourceConfig
		case a.HasPassword:
			u.Source = sourceDatabase
		case known:
			u.Source = sourceNone
		default:
			u.Source = sourceUnknown
		}
	}
	for name := range config {
		if byName[name] == nil {
			add(name).Source = sourceConfig
		}
	}
	for _, l := range locks {
		until := now.Add(l.RetryAfter).Truncate(time.Second)
		switch {
		case strings.HasPrefix(l.Key, "user:"):
			name := strings.TrimPrefix(l.Key, "user:")
			if u := byName[name]; u != nil {
				u.LockedUntil = &until
			} else {
				out.LockedUnknownNames = append(out.LockedUnknownNames, lockReport{Name: name, LockedUntil: until})
			}
		case strings.HasPrefix(l.Key, "ip:"):
			out.LockedClientIPs = append(out.LockedClientIPs, lockReport{Name: strings.TrimPrefix(l.Key, "ip:"), LockedUntil: until})
		}
	}
	for _, u := range byName {
		out.Users = append(out.Users, *u)
	}
	sort.Slice(out.Users, func(i, j int) bool { return out.Users[i].Name < out.Users[j].Name })
	return out, nil
}

// userName canonicalises name as the gateway does and refuses names no
// one could type into the sign-in form.
func userName(name string) (string, error) {
	canon := gateway.CanonicalUser(name)
	switch {
	case canon == "":
		return "", refuse(http.StatusBadRequest, "the user name is empty")
	case len(canon) > 128:
		return "", refuse(http.StatusBadRequest, "the user name is longer than 128 bytes, which the sign-in form refuses")
	case strings.IndexFunc(canon, unicode.IsControl) >= 0:
		return "", refuse(http.StatusBadRequest, "the user name contains a control character")
	}
	return canon, nil
}

// definedByConfig refuses to manage a user a `user` line defines: the
// configuration is where that user's password lives.
func (d *database) definedByConfig(name, what string) error {
	if config, _ := d.configUsers(); config[name] {
		return configUserRefusal(name, what)
	}
	return nil
}

// What to do instead of managing a Caddyfile user here, per operation.
const (
	insteadOfAdd    = "change the hash on that line, or delete the line and reload Caddy before adding the user here"
	insteadOfPasswd = "change the hash on that line (make one with `caddy hash-password`) and reload Caddy"
	insteadOfRemove = "delete that line and reload Caddy (`caddy totp-auth user reset-2fa` clears their 2FA)"
)

func configUserRefusal(name, what string) error {
	return refuse(http.StatusConflict, "%s is defined by a `user` line in the Caddyfile, not in the database: %s", name, what)
}

func alreadyAdded(name string) error {
	return refuse(http.StatusConflict, "%s is already in the database: `caddy totp-auth user passwd %s` changes the password", name, name)
}

func notInDatabase(name string) error {
	return refuse(http.StatusNotFound, "there is no user %s in the database: `caddy totp-auth user add %s` adds one", name, name)
}

// passwordCheck refuses, from a listing, to ask for a password that op
// (users/add or users/passwd) would refuse anyway: the commands call it
// before prompting. The operation checks again when it runs.
func passwordCheck(l userListing, op, name string) error {
	name, err := userName(name)
	if err != nil {
		return err
	}
	source := ""
	for _, u := range l.Users {
		if u.Name == name {
			source = u.Source
		}
	}
	switch {
	case source == sourceConfig && op == "users/add":
		return configUserRefusal(name, insteadOfAdd)
	case source == sourceConfig:
		return configUserRefusal(name, insteadOfPasswd)
	case source == sourceDatabase && op == "users/add":
		return alreadyAdded(name)
	case source != sourceDatabase && op == "users/passwd":
		return notInDatabase(name)
	}
	return nil
}

// addUser stores a user with a password in the database.
func (d *database) addUser(name string, hash []byte) (opReport, error) {
	name, err := userName(name)
	if err != nil {
		return opReport{}, err
	}
	if err := gateway.CheckPasswordHash(hash); err != nil {
		return opReport{}, refuse(http.StatusBadRequest, "%v", err)
	}
	if err := d.definedByConfig(name, insteadOfAdd); err != nil {
		return opReport{}, err
	}
	acct, err := d.db.Account(name)
	if err != nil {
		return opReport{}, err
	}
	if acct.PasswordHash != nil {
		return opReport{}, alreadyAdded(name)
	}
	if err := d.db.SetPassword(name, hash); err != nil {
		return opReport{}, err
	}
	msg := fmt.Sprintf("Added %s. They set up their authenticator app at their first sign-in.", name)
	if acct.TOTPSecret != "" {
		msg = fmt.Sprintf("Added %s, who keeps the 2FA enrollment stored under that name "+
			"(if this is someone else, run `caddy totp-auth user reset-2fa %s`).", name, name)
	}
	return opReport{DB: d.path, Message: msg}, nil
}

// setPassword replaces a database user's password and ends their sessions.
func (d *database) setPassword(name string, hash []byte) (opReport, error) {
	name, err := userName(name)
	if err != nil {
		return opReport{}, err
	}
	if err := gateway.CheckPasswordHash(hash); err != nil {
		return opReport{}, refuse(http.StatusBadRequest, "%v", err)
	}
	if err := d.definedByConfig(name, insteadOfPasswd); err != nil {
		return opReport{}, err
	}
	acct, err := d.db.Account(name)
	if err != nil {
		return opReport{}, err
	}
	if acct.PasswordHash == nil {
		return opReport{}, notInDatabase(name)
	}
	if err := d.db.SetPassword(name, hash); err != nil {
		return opReport{}, err
	}
	if _, err := d.db.BumpGeneration(name); err != nil {
		return opReport{}, err
	}
	return opReport{DB: d.path, Message: fmt.Sprintf("Changed the password of %s and signed them out everywhere.", name)}, nil
}

// removeUser deletes everything the database holds about a user.
func (d *database) removeUser(name string) (opReport, error) {
	name, err := userName(name)
	if err != nil {
		return opReport{}, err
	}
	if err := d.definedByConfig(name, insteadOfRemove); err != nil {
		return opReport{}, err
	}
	acct, err := d.db.Account(name)
	if err != nil {
		return opReport{}, err
	}
	err = d.db.RemoveAccount(name)
	if errors.Is(err, gateway.ErrNotFound) {
		return opReport{}, refuse(http.StatusNotFound, "there is no user %s in the database", name)
	}
	if err != nil {
		return opReport{}, err
	}
	msg := fmt.Sprintf("Removed %s and signed them out everywhere.", name)
	if acct.PasswordHash == nil {
		msg = fmt.Sprintf("Removed the 2FA state stored for %s and signed them out everywhere. "+
			"The database held no password for them: if a `user` line defines %s, they can still sign in and will enroll again.", name, name)
	}
	return opReport{DB: d.path, Message: msg}, nil
}

// resetTwoFactor removes a user's TOTP secret and backup codes and ends
// their sessions: their next sign-in enrolls a new authenticator.
func (d *database) resetTwoFactor(name string, now time.Time) (opReport, error) {
	name, err := userName(name)
	if err != nil {
		return opReport{}, err
	}
	config, known := d.configUsers()
	err = d.db.ResetTOTP(name)
	switch {
	case errors.Is(err, gateway.ErrNotFound) && config[name]:
		return opReport{DB: d.path, Message: fmt.Sprintf("%s has not set up 2FA yet: nothing to reset.", name)}, nil
	case errors.Is(err, gateway.ErrNotFound) && !known:
		return opReport{}, refuse(http.StatusNotFound, "nothing is stored for %s in the database: "+
			"there is no such user, or they have not set up 2FA yet (then there is nothing to reset)", name)
	case errors.Is(err, gateway.ErrNotFound):
		return opReport{}, refuse(http.StatusNotFound, "there is no user %s", name)
	case err != nil:
		return opReport{}, err
	}
	msg := fmt.Sprintf("Reset the 2FA of %s and signed them out everywhere: "+
		"their next sign-in, with their password, sets up a new authenticator app.", name)
	if lock, err := d.db.LockState("user:"+name, now); err != nil {
		return opReport{}, err
	} else if lock != nil {
		msg += fmt.Sprintf(" They are locked out until %s: `caddy totp-auth user unlock %s` lifts that.",
			formatTime(now.Add(lock.RetryAfter)), name)
	}
	return opReport{DB: d.path, Message: msg}, nil
}

// unlockUser lifts a user's lock and forgets their failures.
func (d *database) unlockUser(name string, now time.Time) (opReport, error) {
	name, err := userName(name)
	if err != nil {
		return opReport{}, err
	}
	return d.unlock("user:"+name, name, now)
}

// unlockIP lifts the lock of a client IP (of its /64 for IPv6, as the
// gateway counts it) and forgets its failures.
func (d *database) unlockIP(ip string, now time.Time) (opReport, error) {
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return opReport{}, refuse(http.StatusBadRequest, "%q is not an IP address", ip)
	}
	key := gateway.ClientKey(addr.String())
	return d.unlock(key, strings.TrimPrefix(key, "ip:"), now)
}

func (d *database) unlock(key, what string, now time.Time) (opReport, error) {
	c, err := d.db.Counter(key)
	if err != nil {
		return opReport{}, err
	}
	if err := d.db.Unlock(key); err != nil {
		return opReport{}, err
	}
	d.invalidateLocks()
	var msg string
	switch {
	case c.Locked(now):
		msg = fmt.Sprintf("Unlocked %s; their failed attempts are forgotten.", what)
	case c.Failures > 0:
		msg = fmt.Sprintf("%s was not locked; forgot their %d failed attempt(s).", what, c.Failures)
	default:
		msg = fmt.Sprintf("%s was not locked.", what)
	}
	return opReport{DB: d.path, Message: msg}, nil
}

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
//  1. the current key is copied to <key file>.old, which Caddy accepts
//     as an older key, and which the next start removes;
//  2. the new key replaces the key file (a restart now re-encrypts at
//     open, accepting the old key from .old);
//  3. one transaction re-encrypts every secret under the new key.
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
	next, err := storage.NewKey()
	if err != nil {
		return r, err
	}
	if err := replaceKeyFile(oldKeyFile(file), old); err != nil {
		return r, err
	}
	if err := replaceKeyFile(file, next); err != nil {
		return r, err
	}
	if err := d.db.RotateKey(next); err != nil {
		// The database is still under the old key. Put it back in the key
		// file; if that fails too, the next start re-encrypts under the
		// new key, accepting the old one from .old.
		if rerr := replaceKeyFile(file, old); rerr != nil {
			return r, fmt.Errorf("%w (and putting the old key back into %s failed: %v; the next start completes the rotation)", err, file, rerr)
		}
		return r, err
	}
	d.current = next
	r.Rotated, r.KeyID = true, next.ID()
	r.Message = fmt.Sprintf("Re-encrypted every secret under a new key (id %s, was %s); "+
		"the new key is in %s. The old key stays in %s until Caddy next starts, "+
		"so a restart at any moment works. Backups made before now need the old key: keep a copy of it with them.",
		next.ID(), old.ID(), file, oldKeyFile(file))
	return r, nil
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

// formatTime prints a time as operators read it in a terminal.
func formatTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 MST") }
