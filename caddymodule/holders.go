package caddymodule

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/totp-auth/totp_auth/gateway"
	"github.com/totp-auth/totp_auth/gateway/account"
	"go.uber.org/zap"
)

// What the configurations that use a database tell it: which users their
// `user` lines define (refused when the database holds a password for the
// same name, and signed out for good when a line goes), where the key
// comes from, and how long their lockout windows are.

// holder is what one configuration tells the database about itself.
type holder struct {
	// users are the canonical names of its `user` lines.
	users map[string]bool
	// config is the context of the configuration it belongs to; nil for
	// the commands.
	config context.Context
	// keyFile is the key file its key comes from; "" when encryption_key
	// is configured.
	keyFile string
	// lockout is its failure counting window.
	lockout time.Duration
	// noConfig is set for a command that read no configuration file: it
	// does not know which users `user` lines define.
	noConfig bool
}

// hold records what the configuration of the site block t says. It
// refuses a `user` line for a name the database holds a password for: one
// name, two passwords, and which one counts would depend on the
// configuration.
func (d *database) hold(t *TOTPAuth, h holder) error {
	if len(h.users) > 0 {
		// One look-up per `user` line, never a listing: start-up and
		// reload cost the same with 10 stored users as with 100,000.
		var both []string
		for name := range h.users {
			st, err := d.db.SessionState(name)
			if err != nil {
				return fmt.Errorf("check whether the database %s holds a password for %s: %w", d.path, name, err)
			}
			if st.PasswordSet {
				both = append(both, name)
			}
		}
		sort.Strings(both)
		if len(both) > 0 {
			return fmt.Errorf("user %s is defined both by a `user` line in the configuration and in the database %s "+
				"(added with `caddy totp-auth user add`): keep one, either delete the `user` line "+
				"or run `caddy totp-auth user remove %s --db %s` while Caddy is stopped",
				strings.Join(both, ", "), d.path, both[0], d.path)
		}
	}
	if err := account.MarkConfigUsers(d.db, h.users); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.handlers[t] = h
	return nil
}

// holdForCommand records what a `caddy totp-auth` command that opened the
// database itself knows of the configuration.
func (d *database) holdForCommand(h holder) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.command = &h
}

// holdersLocked returns what every configuration using the database says.
// d.mu must be held.
func (d *database) holdersLocked() []holder {
	hs := make([]holder, 0, len(d.handlers)+1)
	for _, h := range d.handlers {
		hs = append(hs, h)
	}
	if d.command != nil {
		hs = append(hs, *d.command)
	}
	return hs
}

// settleWhenInForce waits until the configuration of config is the one
// Caddy runs (every site block of it provisioned, the one before it
// replaced), then signs out the users whose `user` lines it no longer has
// (see settle). It gives up when the configuration is unloaded first, as a
// failed load or `caddy validate` is. A reload also settles when it
// releases the configuration it replaced (see release), so a quick
// sequence of reloads misses nothing.
func (d *database) settleWhenInForce(config context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !inForce(config) {
		select {
		case <-config.Done():
			return
		case <-tick.C:
		}
	}
	d.settle(config)
}

// inForce reports whether config is the configuration Caddy runs. Site
// blocks see it with values added; its Done channel is its own.
func inForce(config context.Context) bool {
	active := caddy.ActiveContext().Context
	return active != nil && config != nil && active.Done() == config.Done()
}

// settle signs out the users whose `user` lines the configuration config,
// in force, no longer has (account.ForgetConfigUsers).
func (d *database) settle(config context.Context) {
	d.mu.Lock()
	defined := make(map[string]bool)
	found := false
	for _, h := range d.holdersLocked() {
		if h.config != nil && h.config.Done() == config.Done() {
			found = true
			for u := range h.users {
				defined[u] = true
			}
		}
	}
	d.mu.Unlock()
	if !found {
		return
	}
	ended, err := account.ForgetConfigUsers(d.db, defined)
	if err != nil {
		d.logger.Error("could not sign out users whose `user` lines were removed", zap.String("db_path", d.path), zap.Error(err))
	}
	for _, name := range ended {
		d.logger.Info("signed out a user whose `user` line is gone; adding it back does not bring their sessions back",
			zap.String("user", name), zap.String("db_path", d.path))
	}
}

// release forgets the configuration of the site block t. When a reload
// releases the configuration it replaced, the new one is in force: it
// settles.
func (d *database) release(t *TOTPAuth) {
	d.mu.Lock()
	delete(d.handlers, t)
	d.mu.Unlock()
	if active := caddy.ActiveContext().Context; active != nil {
		d.settle(active)
	}
}

// configUsers returns the names every configuration using the database
// defines with `user` lines, and whether that is known: the offline
// commands cannot see the configuration.
func (d *database) configUsers() (map[string]bool, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	users := make(map[string]bool)
	known := false
	for _, h := range d.holdersLocked() {
		if h.noConfig {
			continue
		}
		known = true
		for u := range h.users {
			users[u] = true
		}
	}
	return users, known
}

// keyFile returns the key file every holder reads the key from, or "" if
// any holder names the key in its configuration.
func (d *database) keyFile() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	file := ""
	for _, h := range d.holdersLocked() {
		if h.keyFile == "" || (file != "" && h.keyFile != file) {
			return ""
		}
		file = h.keyFile
	}
	return file
}

// pruneWindow is the longest lockout window of the holders: a counter is
// pruned only once no configuration counts it any more.
func (d *database) pruneWindow() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := time.Duration(0)
	for _, h := range d.holdersLocked() {
		w = max(w, h.lockout)
	}
	if w == 0 {
		w = gateway.DefaultLockout
	}
	return w
}
