// Package gateway is the password + TOTP sign-in flow as plain net/http code:
// the gate in front of the upstream, the built-in pages and their JSON API,
// session and pending cookies, TOTP and backup codes, lockout, CSRF and safe
// redirects.
//
// It knows nothing of Caddy or bbolt. Persistence comes through the Store
// interface defined here, and time through a Clock, so every rule can be
// tested with an in-memory store and a fake clock.
package gateway
