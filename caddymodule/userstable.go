package caddymodule

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/totp-auth/totp_auth/internal/operator"
)

// printUsers writes a listing as a table.
func printUsers(w io.Writer, l operator.Listing, now time.Time) {
	if len(l.Users) == 0 {
		fmt.Fprintln(w, "No users yet: add one with `caddy totp-auth user add <name>` or a `user` line in the Caddyfile.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tSOURCE\t2FA\tBACKUP CODES\tLOCKED UNTIL")
		for _, u := range l.Users {
			twoFA, codes := "off", "-"
			switch {
			case u.TwoFactor:
				twoFA, codes = "on", fmt.Sprint(u.BackupCodesLeft)
				if u.MustRegenerate {
					codes += " (one used: new set due)"
				}
			case u.EnrollmentPending:
				twoFA = "setting up"
			}
			locked := "-"
			if u.LockedUntil != nil {
				locked = untilText(*u.LockedUntil, now)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Source, twoFA, codes, locked)
		}
		_ = tw.Flush()
	}
	if !l.SourcesKnown {
		fmt.Fprintln(w, "\nWithout --config the Caddyfile is unknown here: users of `user` lines who never\n"+
			"signed in are missing, and \"Caddyfile?\" marks those whose 2FA is stored without a password.")
	}
	for _, lk := range l.LockedClientIPs {
		fmt.Fprintf(w, "\nClient IP %s is locked until %s: `caddy totp-auth user unlock --ip %s` lifts it.", lk.Name, untilText(lk.LockedUntil, now), lk.Name)
	}
	for _, lk := range l.LockedUnknownNames {
		fmt.Fprintf(w, "\nThe name %q, which is no user, is locked until %s after repeated guesses.", lk.Name, untilText(lk.LockedUntil, now))
	}
	if len(l.LockedClientIPs)+len(l.LockedUnknownNames) > 0 {
		fmt.Fprintln(w)
	}
}

func untilText(t, now time.Time) string {
	return fmt.Sprintf("%s (in %s)", operator.FormatTime(t), t.Sub(now).Round(time.Second))
}
