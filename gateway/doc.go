// Package gateway is the password + TOTP sign-in flow as plain net/http code:
// the gate in front of the upstream, the built-in pages and their JSON API,
// session and pending cookies, TOTP and backup codes, lockout, CSRF and safe
// redirects.
//
// Every rule lives here once: the changes to an account (changes.go) and
// the lockout's counters (counter.go) are plain functions that update.go
// applies through the Store seam (store.go), whose stores only load, lock
// and save. It knows nothing of Caddy or bbolt, and time comes through a
// Clock, so every rule can be tested with an in-memory store and a fake
// clock.
package gateway
