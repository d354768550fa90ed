package caddymodule

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/totp-auth/totp_auth/internal/operator"
	"github.com/totp-auth/totp_auth/storage/secrets"
)

// This file holds what the `caddy totp-auth` commands run (the tree is in
// command.go): each finds the database, asks the running Caddy or works on
// the file directly, and prints the report.

// change runs an operation that changes the database and prints its report.
func (o *options) change(op adminRoute, req adminRequest, create bool, direct func(*database) (operator.Report, error)) error {
	t, err := o.connect(create)
	if err != nil {
		return err
	}
	defer t.close()
	return o.apply(t, op, req, direct)
}

// changePassword runs an operation that sets user's password. The
// password is asked for once the database is found, so that a database
// that cannot be reached is reported before anyone types.
func (o *options) changePassword(op operator.Operation, user string, cost int, create bool, direct func(*database, string, []byte) (operator.Report, error)) error {
	t, err := o.connect(create)
	if err != nil {
		return err
	}
	defer t.close()
	listing, err := t.users()
	if err != nil {
		return err
	}
	if err := operator.CheckPassword(listing, op, user); err != nil {
		return err
	}
	hash, err := o.readPasswordHash(user, cost)
	if err != nil {
		return err
	}
	return o.apply(t, adminRoute(op), adminRequest{User: user, PasswordHash: string(hash)},
		func(d *database) (operator.Report, error) { return direct(d, user, hash) })
}

func (o *options) apply(t *target, op adminRoute, req adminRequest, direct func(*database) (operator.Report, error)) error {
	var report operator.Report
	var err error
	if t.admin != nil {
		req.DB = t.path
		err = t.admin.call(http.MethodPost, op.path(), req, &report)
	} else {
		report, err = direct(t.offline)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(o.out, report.Message)
	return nil
}

func (o *options) list(asJSON bool, q operator.ListQuery) error {
	t, err := o.connect(false)
	if err != nil {
		return err
	}
	defer t.close()
	listing, err := t.usersPage(q)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(o.out)
		enc.SetIndent("", "  ")
		return enc.Encode(listing)
	}
	how := "through the running Caddy at " + t.adminAddress()
	if t.admin == nil {
		how = "read directly: Caddy is not running"
	}
	fmt.Fprintf(o.out, "Users in %s (%s):\n\n", listing.DB, how)
	printUsers(o.out, listing, time.Now())
	if listing.Next != "" {
		fmt.Fprintf(o.out, "\nMore users follow: run again with --after %s\n", listing.Next)
	}
	return nil
}

// users lists every user of the target's database.
func (t *target) users() (operator.Listing, error) { return t.usersPage(operator.ListQuery{}) }

// usersPage lists the users of the target's database that q asks for.
// Without a Limit it lists them all: through the admin API a page at a
// time, so that Caddy holds one page, never the whole listing.
func (t *target) usersPage(q operator.ListQuery) (operator.Listing, error) {
	if t.admin == nil {
		return t.offline.users().ListPage(time.Now(), q)
	}
	var all operator.Listing
	for page := 0; ; page++ {
		v := url.Values{"db": {t.path}}
		if q.Match != "" {
			v.Set("match", q.Match)
		}
		if q.After != "" {
			v.Set("after", q.After)
		}
		if q.Limit > 0 {
			v.Set("limit", strconv.Itoa(min(q.Limit, maxListPage)))
		}
		var l operator.Listing
		if err := t.admin.call(http.MethodGet, routeUsers.path()+"?"+v.Encode(), nil, &l); err != nil {
			return l, err
		}
		if page == 0 {
			all = l
		} else {
			all.Users = append(all.Users, l.Users...)
			all.Next = l.Next
		}
		if q.Limit > 0 || l.Next == "" {
			return all, nil
		}
		q.After = l.Next
	}
}

func (t *target) adminAddress() string {
	if t.admin == nil {
		return ""
	}
	return t.admin.address
}

func (o *options) rotateKey() error {
	t, err := o.connect(false)
	if err != nil {
		return err
	}
	defer t.close()
	var r rotationReport
	if t.admin != nil {
		err = t.admin.call(http.MethodPost, routeRotateKey.path(), adminRequest{DB: t.path}, &r)
	} else {
		r, err = t.offline.rotateKey()
	}
	if err != nil {
		return err
	}
	if r.Rotated {
		fmt.Fprintln(o.out, r.Message)
		return nil
	}
	next, err := secrets.NewKey()
	if err != nil {
		return err
	}
	fmt.Fprint(o.out, rotationSteps(r.DB, r.OldKeyID, hex.EncodeToString(next[:])))
	return nil
}

func (o *options) backup(file string) error {
	t, err := o.connect(false)
	if err != nil {
		return err
	}
	defer t.close()
	if file != "-" {
		if same(file, t.path) {
			return fmt.Errorf("%s is the database itself: write the backup to another file", file)
		}
	}
	var report backupReport
	write := func(w io.Writer) error {
		if t.admin == nil {
			report, err = t.offline.backup(w, nil)
			return err
		}
		report, err = t.admin.backup(t.path, w)
		return err
	}
	if file == "-" {
		return write(o.out)
	}
	if err := writeFileAtomically(file, write); err != nil {
		return err
	}
	where := "your encryption_key"
	if report.KeyFile != "" {
		where = "the key file " + report.KeyFile
	}
	fmt.Fprintf(o.out, "Wrote a consistent copy of %s to %s (%d bytes).\n"+
		"It opens only with the encryption key with id %s, which is %s: keep a copy of the key too, stored apart from the backup.\n"+
		"To restore: stop Caddy, copy the backup over %s, keep the key where it was, start Caddy.\n",
		report.DB, file, report.Bytes, report.KeyID, where, report.DB)
	return nil
}
