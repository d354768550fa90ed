package operator

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
)

// This file holds the user operations as the admin API and the
// `caddy totp-auth` commands run them, and the sentences that report them.
// Each is written once, here: the admin API calls them on the store a
// running Caddy holds, the commands on a store they opened themselves.

// Users is the operator's view of one store.
type Users struct {
	// Store is the store operated on.
	Store account.Store
	// DB names the store in reports (the database file's path).
	DB string
	// ConfigUsers returns the names the configuration defines with `user`
	// lines, and whether that is known (commands run while Caddy is
	// stopped cannot see the configuration). nil means none, unknown.
	ConfigUsers func() (names map[string]bool, known bool)
	// LocksChanged, if not nil, is called after a lock was lifted.
	LocksChanged func()
}

func (u *Users) configUsers() (map[string]bool, bool) {
	if u.ConfigUsers == nil {
		return nil, false
	}
	return u.ConfigUsers()
}

func (u *Users) locksChanged() {
	if u.LocksChanged != nil {
		u.LocksChanged()
	}
}

// Refusal is an operation refused for a reason the operator can fix.
type Refusal struct {
	// Status is what the admin API answers with.
	Status int
	// Message says what is wrong and what to do instead.
	Message string
}

func (e *Refusal) Error() string { return e.Message }

func refuse(status int, format string, args ...any) error {
	return &Refusal{Status: status, Message: fmt.Sprintf(format, args...)}
}

// Sources of a user in a listing.
const (
	// SourceConfig is a `user` line in the configuration.
	SourceConfig = "Caddyfile"
	// SourceDatabase is a password stored with `caddy totp-auth user add`.
	SourceDatabase = "database"
	// SourceNone is state left in the database for a name that no
	// configuration defines any more (it cannot sign in).
	SourceNone = "none"
	// SourceUnknown is state without a password, listed while Caddy is
	// stopped: a `user` line presumably defines the user.
	SourceUnknown = "Caddyfile?"
)

// UserReport is one user as `caddy totp-auth user list` shows it. It
// carries no secret and no hash.
type UserReport struct {
	Name string `json:"name"`
	// Source is Caddyfile, database, none, or Caddyfile? (see the
	// source constants).
	Source            string     `json:"source"`
	TwoFactor         bool       `json:"two_factor"`
	Passkeys          int        `json:"passkeys,omitempty"`
	EnrollmentPending bool       `json:"enrollment_pending,omitempty"`
	BackupCodesLeft   int        `json:"backup_codes_left"`
	MustRegenerate    bool       `json:"must_regenerate_backup_codes,omitempty"`
	LockedUntil       *time.Time `json:"locked_until,omitempty"`
}

// LockReport is a lock on something that is not a user.
type LockReport struct {
	Name        string    `json:"name"`
	LockedUntil time.Time `json:"locked_until"`
}

// Listing answers `caddy totp-auth user list`.
type Listing struct {
	DB string `json:"db"`
	// SourcesKnown is false when the listing was made without the
	// configuration (Caddy stopped): users defined only by `user` lines
	// and never signed in are then missing.
	SourcesKnown bool         `json:"sources_known"`
	Users        []UserReport `json:"users"`
	// LockedClientIPs are client IPs locked for too many failures.
	LockedClientIPs []LockReport `json:"locked_client_ips,omitempty"`
	// LockedUnknownNames are names that are no user but were guessed
	// often enough to be locked.
	LockedUnknownNames []LockReport `json:"locked_unknown_names,omitempty"`
	// Next is where the next page starts (ListQuery.After) when the
	// listing was asked for a page and more may follow; "" on the last.
	Next string `json:"next,omitempty"`
}

// Report answers every operation that changes something.
type Report struct {
	DB      string `json:"db"`
	Message string `json:"message"`
}

// ListQuery narrows and pages a listing. Its zero value lists every user.
type ListQuery struct {
	// Match keeps only the users whose name contains it; "" keeps all.
	Match string
	// After starts the page after this name: the Next of the page before.
	After string
	// Limit is the most users on one page; 0 means no limit.
	Limit int
}

// listBatch is how many accounts a paged listing reads from the store at
// a time, whatever its filter: what it holds in memory besides the page.
const listBatch = 500

// List lists every user the database or the configuration knows.
func (u *Users) List(now time.Time) (Listing, error) { return u.ListPage(now, ListQuery{}) }

// ListPage lists the users q asks for, in name order: the stored accounts
// and the names of `user` lines, with their locks. Locks on client IPs and
// on names that are no user come with the first page. With a Limit it
// reads the store a batch at a time, so a page of 100 out of 100,000 users
// costs the memory of 100 and a batch; Next names where the next page
// starts (it may turn out empty), "" on the last.
func (u *Users) ListPage(now time.Time, q ListQuery) (Listing, error) {
	q.Match = strings.ToLower(strings.TrimSpace(q.Match))
	accounts, more, err := u.accountPage(q)
	if err != nil {
		return Listing{}, err
	}
	locks, err := Locks(u.Store, now)
	if err != nil {
		return Listing{}, err
	}
	config, known := u.configUsers()
	out := Listing{DB: u.DB, SourcesKnown: known, Users: []UserReport{}}

	byName := make(map[string]*UserReport)
	add := func(name string) *UserReport {
		r := &UserReport{Name: name}
		byName[name] = r
		return r
	}
	for _, a := range accounts {
		r := add(a.Name)
		r.TwoFactor = a.TOTPEnabled || a.Passkeys > 0
		r.Passkeys = a.Passkeys
		r.EnrollmentPending = a.EnrollmentPending && !r.TwoFactor
		r.BackupCodesLeft = a.BackupCodesLeft
		r.MustRegenerate = a.MustRegenerate
		switch {
		case config[a.Name]:
			r.Source = SourceConfig
		case a.HasPassword:
			r.Source = SourceDatabase
		case known:
			r.Source = SourceNone
		default:
			r.Source = SourceUnknown
		}
	}
	// Names of `user` lines without an account, in the range of names
	// this page's accounts cover (to the end, when no account is left).
	var last string
	if more {
		last = accounts[len(accounts)-1].Name
	}
	for name := range config {
		if byName[name] == nil && name > q.After && (!more || name <= last) && strings.Contains(name, q.Match) {
			add(name).Source = SourceConfig
		}
	}
	for _, r := range byName {
		out.Users = append(out.Users, *r)
	}
	sort.Slice(out.Users, func(i, j int) bool { return out.Users[i].Name < out.Users[j].Name })
	if q.Limit > 0 && len(out.Users) > q.Limit {
		out.Users, more = out.Users[:q.Limit], true
	}
	if more {
		out.Next = out.Users[len(out.Users)-1].Name
	}
	// The locks go onto the reports in out.Users; byName keeps the
	// names cut off the page, whose locks come with their own page.
	for i := range out.Users {
		byName[out.Users[i].Name] = &out.Users[i]
	}
	for _, l := range locks {
		until := now.Add(l.RetryAfter).Truncate(time.Second)
		if name, ok := account.UserCounter.Name(l.Key); ok {
			if r := byName[name]; r != nil {
				r.LockedUntil = &until
			} else if q.After == "" && !u.isUser(name, config, q) {
				out.LockedUnknownNames = append(out.LockedUnknownNames, LockReport{Name: name, LockedUntil: until})
			}
		} else if ip, ok := account.IPCounter.Name(l.Key); ok && q.After == "" {
			out.LockedClientIPs = append(out.LockedClientIPs, LockReport{Name: ip, LockedUntil: until})
		}
	}
	return out, nil
}

// accountPage returns the stored accounts q asks for in name order, and
// whether there may be more after the last of them.
func (u *Users) accountPage(q ListQuery) ([]AccountSummary, bool, error) {
	var list []AccountSummary
	if q.Limit <= 0 {
		all, err := Accounts(u.Store)
		if err != nil {
			return nil, false, err
		}
		for _, a := range all {
			if a.Name > q.After && strings.Contains(a.Name, q.Match) {
				list = append(list, a)
			}
		}
		return list, false, nil
	}
	after := q.After
	for {
		batch, err := u.Store.AccountsAfter(after, listBatch)
		if err != nil {
			return nil, false, err
		}
		for _, a := range batch {
			after = a.Name
			if strings.Contains(a.Name, q.Match) {
				list = append(list, summary(a))
				if len(list) == q.Limit {
					return list, true, nil
				}
			}
		}
		if len(batch) < listBatch {
			return list, false, nil
		}
	}
}

// isUser reports whether a locked name, not on this page of q, belongs
// elsewhere than among the page's unknown names: a `user` line, a stored
// account on another page, or a name the filter leaves out.
func (u *Users) isUser(name string, config map[string]bool, q ListQuery) bool {
	if q.Limit <= 0 && q.Match == "" {
		return false // every user is on the page
	}
	if config[name] || !strings.Contains(name, q.Match) {
		return true
	}
	a, err := u.Store.Account(name)
	return err != nil || a.Stored
}

// UserName canonicalises name as the gateway does and refuses names no
// one could type into the sign-in form, and names with a space or a colon:
// the name is what the upstream receives in Remote-User, and a colon
// would end it early in a Basic Authorization header.
func UserName(name string) (string, error) {
	canon := gateway.CanonicalUser(name)
	switch {
	case canon == "":
		return "", refuse(http.StatusBadRequest, "the user name is empty")
	case len(canon) > 128:
		return "", refuse(http.StatusBadRequest, "the user name is longer than 128 bytes, which the sign-in form refuses")
	case strings.IndexFunc(canon, unicode.IsControl) >= 0:
		return "", refuse(http.StatusBadRequest, "the user name contains a control character")
	case strings.IndexFunc(canon, unicode.IsSpace) >= 0:
		return "", refuse(http.StatusBadRequest, "the user name %q contains a space, which an app behind the gate may read as two names in Remote-User: "+
			"use a name without spaces, such as %s", canon, strings.Join(strings.Fields(canon), "."))
	case strings.ContainsRune(canon, ':'):
		return "", refuse(http.StatusBadRequest, "the user name %q contains a colon, which ends the name in a user:password pair (Basic authentication): "+
			"use a name without colons", canon)
	}
	return canon, nil
}

// definedByConfig refuses to manage a user a `user` line defines: the
// configuration is where that user's password lives.
func (u *Users) definedByConfig(name, what string) error {
	if config, _ := u.configUsers(); config[name] {
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

// Operation names a user operation. It is also its path in the totp_auth
// admin API, under /totp-auth/.
type Operation string

// The user operations.
const (
	OpListUsers      Operation = "users"
	OpAddUser        Operation = "users/add"
	OpSetPassword    Operation = "users/passwd"
	OpRemoveUser     Operation = "users/remove"
	OpResetTwoFactor Operation = "users/reset-2fa"
	OpUnlock         Operation = "users/unlock"
	OpSignOut        Operation = "users/signout"
	OpListPasskeys   Operation = "users/passkeys"
	OpRemovePasskey  Operation = "users/remove-passkey"
)

// CheckPassword refuses, from a listing, to ask for a password that op
// (OpAddUser or OpSetPassword) would refuse anyway: the commands call it
// before prompting. The operation checks again when it runs.
func CheckPassword(l Listing, op Operation, name string) error {
	name, err := UserName(name)
	if err != nil {
		return err
	}
	source := ""
	for _, r := range l.Users {
		if r.Name == name {
			source = r.Source
		}
	}
	switch {
	case source == SourceConfig && op == OpAddUser:
		return configUserRefusal(name, insteadOfAdd)
	case source == SourceConfig:
		return configUserRefusal(name, insteadOfPasswd)
	case source == SourceDatabase && op == OpAddUser:
		return alreadyAdded(name)
	case source != SourceDatabase && op == OpSetPassword:
		return notInDatabase(name)
	}
	return nil
}

// passwordFor checks what Add and ChangePassword are given, the user name
// and the password hash, refuses a name the configuration defines (saying
// what to do instead), and reads the user's account.
func (u *Users) passwordFor(name string, hash []byte, instead string) (string, account.Account, error) {
	name, err := UserName(name)
	if err != nil {
		return "", account.Account{}, err
	}
	if err := gateway.CheckPasswordHash(hash); err != nil {
		return "", account.Account{}, refuse(http.StatusBadRequest, "%v", err)
	}
	if err := u.definedByConfig(name, instead); err != nil {
		return "", account.Account{}, err
	}
	acct, err := u.Store.Account(name)
	return name, acct, err
}

// Add stores a user with a password in the database.
func (u *Users) Add(name string, hash []byte) (Report, error) {
	name, acct, err := u.passwordFor(name, hash, insteadOfAdd)
	if err != nil {
		return Report{}, err
	}
	if acct.PasswordHash != nil {
		return Report{}, alreadyAdded(name)
	}
	if err := SetPassword(u.Store, name, hash); err != nil {
		return Report{}, err
	}
	msg := fmt.Sprintf("Added %s. They set up their authenticator app at their first sign-in.", name)
	if acct.TOTPSecret != "" {
		msg = fmt.Sprintf("Added %s, who keeps the 2FA enrollment stored under that name "+
			"(if this is someone else, run `caddy totp-auth user reset-2fa %s`).", name, name)
	}
	return Report{DB: u.DB, Message: msg}, nil
}

// ChangePassword replaces a database user's password, ends their sessions
// and revokes their app passwords.
func (u *Users) ChangePassword(name string, hash []byte) (Report, error) {
	name, acct, err := u.passwordFor(name, hash, insteadOfPasswd)
	if err != nil {
		return Report{}, err
	}
	if acct.PasswordHash == nil {
		return Report{}, notInDatabase(name)
	}
	if len(hash) == 0 {
		return Report{}, refuse(http.StatusBadRequest, "empty password hash")
	}
	if _, err := account.ChangePassword(u.Store, name, hash); err != nil {
		return Report{}, fmt.Errorf("change the password of %q: %w", name, err)
	}
	return Report{DB: u.DB, Message: fmt.Sprintf("Changed the password of %s, signed them out everywhere and revoked their app passwords.", name)}, nil
}

// Remove deletes everything the database holds about a user.
func (u *Users) Remove(name string) (Report, error) {
	name, err := UserName(name)
	if err != nil {
		return Report{}, err
	}
	if err := u.definedByConfig(name, insteadOfRemove); err != nil {
		return Report{}, err
	}
	acct, err := u.Store.Account(name)
	if err != nil {
		return Report{}, err
	}
	err = RemoveAccount(u.Store, name)
	if errors.Is(err, account.ErrNotFound) {
		return Report{}, refuse(http.StatusNotFound, "there is no user %s in the database", name)
	}
	if err != nil {
		return Report{}, err
	}
	msg := fmt.Sprintf("Removed %s and signed them out everywhere.", name)
	if acct.PasswordHash == nil {
		msg = fmt.Sprintf("Removed the 2FA state stored for %s and signed them out everywhere. "+
			"The database held no password for them: if a `user` line defines %s, they can still sign in and will enroll again.", name, name)
	}
	return Report{DB: u.DB, Message: msg}, nil
}

// ResetTwoFactor removes a user's TOTP secret, passkeys and backup codes
// and ends their sessions: their next sign-in enrolls a second factor again.
func (u *Users) ResetTwoFactor(name string, now time.Time) (Report, error) {
	name, err := UserName(name)
	if err != nil {
		return Report{}, err
	}
	config, known := u.configUsers()
	acct, err := u.Store.Account(name)
	if err != nil {
		return Report{}, err
	}
	if acct.Stored && !acct.HasSecondFactor() && acct.Pending == nil && (config[name] || acct.PasswordHash != nil) {
		return Report{DB: u.DB, Message: fmt.Sprintf("%s has not set up 2FA yet: nothing to reset.", name)}, nil
	}
	err = ResetTOTP(u.Store, name)
	switch {
	case errors.Is(err, account.ErrNotFound) && config[name]:
		return Report{DB: u.DB, Message: fmt.Sprintf("%s has not set up 2FA yet: nothing to reset.", name)}, nil
	case errors.Is(err, account.ErrNotFound) && !known:
		return Report{}, refuse(http.StatusNotFound, "nothing is stored for %s in the database: "+
			"there is no such user, or they have not set up 2FA yet (then there is nothing to reset)", name)
	case errors.Is(err, account.ErrNotFound):
		return Report{}, refuse(http.StatusNotFound, "there is no user %s", name)
	case err != nil:
		return Report{}, err
	}
	msg := fmt.Sprintf("Reset the 2FA of %s and signed them out everywhere: "+
		"their next sign-in, with their password, sets up a new authenticator app.", name)
	if lock, err := LockState(u.Store, account.UserCounter.Key(name), now); err != nil {
		return Report{}, err
	} else if lock != nil {
		msg += fmt.Sprintf(" They are locked out until %s: `caddy totp-auth user unlock %s` lifts that.",
			FormatTime(now.Add(lock.RetryAfter)), name)
	}
	return Report{DB: u.DB, Message: msg}, nil
}

// SignOut ends every session and pending sign-in of a user, however the
// user is defined (SPEC §4 rule 18): it raises the stored generation,
// which every cookie of the user must match.
func (u *Users) SignOut(name string) (Report, error) {
	name, err := UserName(name)
	if err != nil {
		return Report{}, err
	}
	config, known := u.configUsers()
	acct, err := u.Store.Account(name)
	if err != nil {
		return Report{}, err
	}
	if known && !config[name] && acct.PasswordHash == nil {
		return Report{}, refuse(http.StatusNotFound, "there is no user %s: no `user` line and no password in the database", name)
	}
	if _, err := account.BumpGeneration(u.Store, name); err != nil {
		return Report{}, err
	}
	msg := fmt.Sprintf("Signed %s out everywhere: every session and pending sign-in has ended.", name)
	if !known && acct.PasswordHash == nil {
		msg = fmt.Sprintf("Signed %s out everywhere, if a `user` line defines them (the database holds no password for %s).", name, name)
	}
	return Report{DB: u.DB, Message: msg}, nil
}

// UnlockUser lifts a user's lock and forgets their failures.
func (u *Users) UnlockUser(name string, now time.Time) (Report, error) {
	name, err := UserName(name)
	if err != nil {
		return Report{}, err
	}
	return u.unlock(account.UserCounter.Key(name), name, now)
}

// UnlockIP lifts the lock of a client IP (of its /64 for IPv6, as the
// gateway counts it) and forgets its failures.
func (u *Users) UnlockIP(ip string, now time.Time) (Report, error) {
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return Report{}, refuse(http.StatusBadRequest, "%q is not an IP address", ip)
	}
	key := gateway.ClientKey(addr.String())
	name, _ := account.IPCounter.Name(key)
	return u.unlock(key, name, now)
}

func (u *Users) unlock(key, what string, now time.Time) (Report, error) {
	c, err := u.Store.Counter(key)
	if err != nil {
		return Report{}, err
	}
	if err := Unlock(u.Store, key); err != nil {
		return Report{}, err
	}
	u.locksChanged()
	var msg string
	switch {
	case c.Locked(now):
		msg = fmt.Sprintf("Unlocked %s; their failed attempts are forgotten.", what)
	case c.Failures > 0:
		msg = fmt.Sprintf("%s was not locked; forgot their %d failed attempt(s).", what, c.Failures)
	default:
		msg = fmt.Sprintf("%s was not locked.", what)
	}
	return Report{DB: u.DB, Message: msg}, nil
}

// FormatTime prints a time as operators read it in a terminal.
func FormatTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 MST") }
