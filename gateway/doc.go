// Package gateway is the password + TOTP sign-in flow as plain net/http code:
// the gate in front of the upstream, the built-in pages and their JSON API,
// session and pending cookies, TOTP and backup codes, lockout, CSRF, safe
// redirects, access policies and the portal's verify endpoints.
//
// The rules for changing an account and the lockout's counters live in
// package account, which the stores implement; this package decides when
// to apply them. It knows nothing of Caddy, bbolt or PostgreSQL, and time
// comes through a Clock, so every flow can be tested with an in-memory
// store and a fake clock.
package gateway
