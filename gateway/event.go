package gateway

// EventKind names what a security event is about, as the audit log's
// "event" field and the metrics' kind label say it.
type EventKind string

// The events the gateway logs and counts.
const (
	EventSignIn                 EventKind = "sign_in"
	EventPassword               EventKind = "password"
	EventSecondFactor           EventKind = "second_factor"
	EventEnrollment             EventKind = "enrollment"
	EventBackupCode             EventKind = "backup_code"
	EventBackupCodesRegenerated EventKind = "backup_codes_regenerated"
	EventDisable                EventKind = "disable"
	EventLogout                 EventKind = "logout"
	EventLogoutAll              EventKind = "logout_all"
	EventLockout                EventKind = "lockout"
	EventCSRF                   EventKind = "csrf"
	EventAccess                 EventKind = "access"
	// EventSessionEnded is one session, or every other one, signed out
	// from the session list; EventForgetDevice a remembered device forgotten.
	EventSessionEnded EventKind = "session_ended"
	EventForgetDevice EventKind = "forget_device"
	// EventPasskeyAdded and EventPasskeyRemoved are a passkey registered
	// or removed (SPEC §14).
	EventPasskeyAdded   EventKind = "passkey_added"
	EventPasskeyRemoved EventKind = "passkey_removed"
	// EventFormResent is a form the browser posted again (a reload of the
	// page that answered it), answered unevaluated.
	EventFormResent EventKind = "form_resent"
	// EventAppPassword is a request with an app password (SPEC §15).
	EventAppPassword EventKind = "app_password"
	// EventAppPasswordChange is the making (with the password) or the
	// revoking of an app password.
	EventAppPasswordChange EventKind = "app_password_change"
)

// Outcome is how a security event ended.
type Outcome string

// The outcomes of events.
const (
	OutcomeOK        Outcome = "ok"
	OutcomeFailure   Outcome = "failure"
	OutcomeLocked    Outcome = "locked"
	OutcomeRefused   Outcome = "refused"
	OutcomeBusy      Outcome = "busy"
	OutcomeForbidden Outcome = "forbidden"
	// OutcomeOutOfScope is an app password used outside its scope.
	OutcomeOutOfScope Outcome = "out_of_scope"
)

// Event is one security-relevant outcome, as logged and counted.
type Event struct {
	Kind    EventKind
	Outcome Outcome
	User    string
	IP      string
	// Factor is what completed a sign-in (EventSignIn, OutcomeOK); 0
	// for other events.
	Factor Factor
}
