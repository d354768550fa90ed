package operator

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// The operations on app passwords (SPEC §15): listing a user's, and
// revoking one. Users make their own on the account page.

// The app-password operations, as paths of the admin API.
const (
	OpAppPasswords       Operation = "users/app-passwords"
	OpRevokeAppPassword  Operation = "users/revoke-app-password"
	appPasswordTimeStyle           = "2006-01-02 15:04 UTC"
)

// AppPasswords reports the user's app passwords that have not expired at
// now: id, name, scope, made, last use and expiry, never a value or hash.
func (u *Users) AppPasswords(name string, now time.Time) (Report, error) {
	name, err := UserName(name)
	if err != nil {
		return Report{}, err
	}
	acct, err := u.Store.Account(name)
	if err != nil {
		return Report{}, err
	}
	var live []account.AppPassword
	for _, p := range acct.AppPasswords {
		if p.Expires.IsZero() || now.Before(p.Expires) {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		return Report{DB: u.DB, Message: fmt.Sprintf("%s has no app passwords.", name)}, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "App passwords of %s:\n\n", name)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tSCOPE\tCREATED\tLAST USED\tEXPIRES")
	for _, p := range live {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, scope(p), p.Created.UTC().Format(appPasswordTimeStyle),
			lastUse(p), orNever(p.Expires))
	}
	if err := w.Flush(); err != nil {
		return Report{}, err
	}
	fmt.Fprintf(&b, "\n`caddy totp-auth user revoke-app-password %s <id>` revokes one.", name)
	return Report{DB: u.DB, Message: b.String()}, nil
}

// RevokeAppPassword revokes the user's app password with this id.
func (u *Users) RevokeAppPassword(name, id string) (Report, error) {
	name, err := UserName(name)
	if err != nil {
		return Report{}, err
	}
	err = account.RevokeAppPassword(u.Store, name, id)
	if errors.Is(err, account.ErrNoAppPassword) {
		return Report{}, refuse(http.StatusNotFound, "%s has no app password %q: `caddy totp-auth user app-passwords %s` lists them", name, id, name)
	}
	if err != nil {
		return Report{}, err
	}
	return Report{DB: u.DB, Message: fmt.Sprintf("Revoked app password %s of %s: it no longer works anywhere.", id, name)}, nil
}

func scope(p account.AppPassword) string {
	var parts []string
	if p.ReadOnly {
		parts = append(parts, "read-only")
	}
	if p.PathPrefix != "" {
		parts = append(parts, p.PathPrefix)
	}
	if len(parts) == 0 {
		return "everything"
	}
	return strings.Join(parts, ", ")
}

func lastUse(p account.AppPassword) string {
	if p.LastUsed.IsZero() {
		return "never"
	}
	return p.LastUsed.UTC().Format(appPasswordTimeStyle) + " from " + p.LastUsedIP
}

func orNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(appPasswordTimeStyle)
}
