// Package account is the model every store implements and every flow
// changes: an Account (a user's password hash, second factors — a TOTP
// secret and passkeys —, backup codes, generation and revoked sessions)
// with the rules for changing it,
// the lockout's failure Counters with their transitions, and the Store seam
// through which both are loaded, locked and saved.
//
// It sits apart from package gateway as database/sql/driver sits apart from
// database/sql: a store imports this small package and nothing of HTTP,
// pages or logging. Every rule lives here once, as a plain function over an
// Account or a Counter; the functions that apply them through a Store
// (AcceptStep, TakeAttempt, ...) are what the sign-in flow, the operator
// tools and the store conformance suite (internal/storetest) all call, so a
// store is held to the same rules whoever drives it.
package account
