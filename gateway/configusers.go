package gateway

import "fmt"

// Users of `user` lines can be signed out for good (SPEC §4 rule 18). A
// session of such a user is bound to the hash it was proven against (see
// Session.Credential), so a changed line ends it. A removed line must end
// it too, and adding the line back must not bring it back: the store
// remembers which names a configuration defined (Account.ConfigUser), and
// once a complete configuration no longer defines one, its sessions end.
// The Caddy adapter says when a configuration is complete (in force, with
// every site block provisioned); the rules are here.

// MarkConfigUsers records that a configuration using s defines names with
// `user` lines. It writes only for names not marked yet.
func MarkConfigUsers(s Store, names map[string]bool) error {
	for name := range names {
		err := update(s, name, func(a *Account) error {
			if a.ConfigUser {
				return errUnchanged
			}
			a.ConfigUser = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("remember the `user` line of %s: %w", name, err)
		}
	}
	return nil
}

// ForgetConfigUsers ends every session and pending sign-in, and revokes
// the app passwords, of each user a `user` line defined once but no
// configuration using s defines now
// (defined: the names every configuration in force defines), and forgets
// the mark, so that adding the line back starts afresh. It returns the
// names it signed out.
func ForgetConfigUsers(s Store, defined map[string]bool) ([]string, error) {
	accounts, err := s.Accounts()
	if err != nil {
		return nil, err
	}
	var ended []string
	for _, acct := range accounts {
		if !acct.ConfigUser || defined[acct.Name] {
			continue
		}
		err := update(s, acct.Name, func(a *Account) error {
			if !a.ConfigUser || defined[a.Name] {
				return errUnchanged
			}
			a.ConfigUser = false
			a.EndSessions()
			a.RevokeAppPasswords()
			return nil
		})
		if err != nil {
			return ended, fmt.Errorf("sign out %s, whose `user` line is gone: %w", acct.Name, err)
		}
		ended = append(ended, acct.Name)
	}
	return ended, nil
}
