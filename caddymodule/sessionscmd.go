package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/totp-auth/totp_auth/internal/operator"
)

// `caddy totp-auth user sessions <name>` and `user signout <name>
// --session <id>`: a user's sessions and remembered devices (SPEC §16),
// through the running Caddy or the database directly, as every command.

func (o *options) sessions(name string, asJSON bool) error {
	t, err := o.connect(false)
	if err != nil {
		return err
	}
	defer t.close()
	var l operator.SessionListing
	if t.admin != nil {
		err = t.admin.call(http.MethodGet, routeSessions.path()+"?db="+url.QueryEscape(t.path)+"&user="+url.QueryEscape(name), nil, &l)
	} else {
		l, err = t.offline.users().Sessions(name, time.Now())
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(o.out)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	printSessions(o, l)
	return nil
}

func printSessions(o *options, l operator.SessionListing) {
	if len(l.Sessions) == 0 {
		fmt.Fprintf(o.out, "%s has no session in force.\n", l.User)
	} else {
		fmt.Fprintf(o.out, "Sessions of %s:\n\n", l.User)
		tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tDEVICE\tIP\tSIGNED IN\tLAST SEEN\tLEVEL\tFACTOR")
		for _, s := range l.Sessions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.ID, s.Device, s.IP, s.SignedIn, s.LastSeen, s.Level, s.Factor)
		}
		tw.Flush()
		fmt.Fprintf(o.out, "\n`caddy totp-auth user signout %s --session <ID>` ends one.\n", l.User)
	}
	if len(l.Devices) == 0 {
		return
	}
	fmt.Fprintf(o.out, "\nRemembered devices (the second factor is skipped there; `user signout %s` forgets them all):\n\n", l.User)
	tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDEVICE\tREMEMBERED\tLAST USED\tEXPIRES")
	for _, d := range l.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.Device, d.Created, d.LastUsed, d.Expires)
	}
	tw.Flush()
}
