package gateway

// Event is one security-relevant outcome, as logged and counted.
type Event struct {
	// Kind is what happened: "sign_in", "password", "second_factor",
	// "enrollment", "backup_code", "backup_codes_regenerated",
	// "disable", "logout", "logout_all", "lockout".
	Kind string
	// Outcome is "ok", "failure", "locked", "refused" or "busy".
	Outcome string
	User    string
	IP      string
}
