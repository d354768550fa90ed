package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/totp-auth/totp_auth/internal/operator"
)

// The passkey commands and their admin route (SPEC §14):
// `caddy totp-auth user passkeys <name>` and
// `caddy totp-auth user remove-passkey <name> <id>`.

func passkeyCommands(o *options) []*cobra.Command {
	var asJSON bool
	list := &cobra.Command{
		Use:   "passkeys <name>",
		Short: "Lists a user's passkeys: id, name, created, last used",
		Args:  cobra.ExactArgs(1),
		RunE:  func(_ *cobra.Command, args []string) error { return o.passkeys(args[0], asJSON) },
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the listing as JSON")
	remove := &cobra.Command{
		Use:   "remove-passkey <name> <id>",
		Short: "Removes one passkey of a user and signs them out everywhere",
		Long: `Removes the passkey with this id (as ` + "`user passkeys`" + ` lists it) and ends
every session of the user. Use it for a lost security key, or for a passkey
the log reports refused as a possible clone (its signature counter went
back). It may remove the user's last second factor: their next sign-in
then sets one up again, as after reset-2fa. An id that begins with "-"
goes after "--", with every flag before it:
remove-passkey --config /etc/caddy/Caddyfile alice -- -q3Xz...`,
		Args: cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			return o.change(routeRemovePasskey, adminRequest{User: args[0], Passkey: args[1]}, false,
				func(d *database) (operator.Report, error) { return d.users().RemovePasskey(args[0], args[1]) })
		},
	}
	return []*cobra.Command{list, remove}
}

func (o *options) passkeys(user string, asJSON bool) error {
	t, err := o.connect(false)
	if err != nil {
		return err
	}
	defer t.close()
	var l operator.PasskeyListing
	if t.admin != nil {
		err = t.admin.call(http.MethodGet, routePasskeys.path()+"?db="+url.QueryEscape(t.path)+"&user="+url.QueryEscape(user), nil, &l)
	} else {
		l, err = t.offline.users().Passkeys(user)
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(o.out)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	if len(l.Passkeys) == 0 {
		fmt.Fprintf(o.out, "%s has no passkeys in %s.\n", l.User, l.DB)
		return nil
	}
	fmt.Fprintf(o.out, "Passkeys of %s in %s:\n\n", l.User, l.DB)
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSITE\tCREATED\tLAST USED")
	for _, p := range l.Passkeys {
		last := "never"
		if p.LastUsed != nil {
			last = operator.FormatTime(*p.LastUsed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, p.RPID, operator.FormatTime(p.Created), last)
	}
	return tw.Flush()
}

// servePasskeys answers GET /totp-auth/users/passkeys?db=…&user=….
func servePasskeys(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return apiError(http.StatusMethodNotAllowed, "use GET")
	}
	d, err := findDatabase(r.URL.Query().Get("db"))
	if err != nil {
		return err
	}
	l, err := d.users().Passkeys(r.URL.Query().Get("user"))
	if err != nil {
		return adminFailure(err)
	}
	return writeAdminJSON(w, l)
}
