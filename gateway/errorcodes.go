package gateway

// errorCode is what an API client is told went wrong: the "error" field of
// every JSON refusal, {"error": code}. It is a struct rather than a string
// so that a string literal where a code belongs does not compile: the
// codes below are the only ones there are, and the table of error codes in
// docs/api.md lists the same ones (a test compares the two).
type errorCode struct{ name string }

// String is the code as clients read it.
func (c errorCode) String() string { return c.name }

// MarshalText writes the code as its name in any JSON answer.
func (c errorCode) MarshalText() ([]byte, error) { return []byte(c.name), nil }

// The error codes, each with when a client gets it and with which status.
var (
	// codeBadRequest (400): a body that is not a form or a JSON object of
	// strings, a field given twice, a login without a user name or a
	// password, a current or new password over 1024 bytes, an
	// app-password form with a field out of range (with "field" naming
	// it), a forward-auth check whose headers cannot be believed or that
	// reached a path that is not a verify endpoint.
	codeBadRequest = errorCode{"bad_request"}
	// codeBodyTooLarge (413): a request body over 16 KiB.
	codeBodyTooLarge = errorCode{"body_too_large"}
	// codeUnsupportedMediaType (415): a body neither a form post nor JSON.
	codeUnsupportedMediaType = errorCode{"unsupported_media_type"}
	// codeCSRF (403): a form without a valid token, or a cross-origin
	// Origin.
	codeCSRF = errorCode{"csrf"}
	// codeBusy (503, with Retry-After): the password-hashing queue is full;
	// the attempt is not counted.
	codeBusy = errorCode{"busy"}
	// codeInternalError (500): the server failed (a store error, a cookie
	// it could not seal); the cause is logged, the client learns nothing.
	codeInternalError = errorCode{"internal_error"}
	// codeMethodNotAllowed (405, with Allow): a method the path does not
	// take.
	codeMethodNotAllowed = errorCode{"method_not_allowed"}
	// codeNotFound (404): a path under the prefix that is no page, a verify
	// endpoint outside portal mode, or a session, device, passkey or app
	// password that is not there (any more).
	codeNotFound = errorCode{"not_found"}

	// codeUnauthenticated (401): no session (or it expired), no pending
	// sign-in where a step needs one, or a forward-auth check that must
	// sign in first (with Location naming the login page).
	codeUnauthenticated = errorCode{"unauthenticated"}
	// codeTwoFactorRequired (401, with "redirect"): a password-only session
	// on a block that requires 2FA; the pending cookie set with it goes on
	// to the second factor.
	codeTwoFactorRequired = errorCode{"2fa_required"}
	// codeEnrollRequired (401, with "redirect"): as codeTwoFactorRequired,
	// for a user who has not enrolled yet.
	codeEnrollRequired = errorCode{"enroll_required"}
	// codeInvalidCredentials (401): a wrong user name or password (login,
	// setup, turning 2FA off, changing the password, adding or removing a
	// passkey, making an app password), a wrong code or refused passkey
	// answer when turning 2FA off or changing the password, or a wrong app
	// password. Counts as a failure.
	codeInvalidCredentials = errorCode{"invalid_credentials"}
	// codeLocked (429, with Retry-After and "retry_after" in seconds): the
	// user or the client is locked out for now.
	codeLocked = errorCode{"locked"}
	// codeInvalidCode: a wrong TOTP or backup code, 401 at 2fa and
	// backup-codes, 400 when confirming setup.
	codeInvalidCode = errorCode{"invalid_code"}
	// codePasswordRequired (403): a signed-in user at setup, or adding a
	// passkey, before posting their password.
	codePasswordRequired = errorCode{"password_required"}
	// codeSetupExpired (400): confirming a setup key that has expired or
	// been replaced.
	codeSetupExpired = errorCode{"setup_expired"}
	// codeNotEnrolled (400): new backup codes or turning 2FA off without
	// 2FA on.
	codeNotEnrolled = errorCode{"not_enrolled"}
	// codeCodesGone (410): the backup codes of this session are no longer
	// shown (the minute is over, or the set was replaced).
	codeCodesGone = errorCode{"codes_gone"}
	// codeRegenerateBackupCodes (403): any other request of a user who
	// must make new backup codes first.
	codeRegenerateBackupCodes = errorCode{"regenerate_backup_codes"}

	// codeForbidden (403): a signed-in user whom the access policy does
	// not let through.
	codeForbidden = errorCode{"forbidden"}
	// codeUntrustedCaller (403): a verify request from outside the
	// server's trusted_proxies.
	codeUntrustedCaller = errorCode{"untrusted_caller"}
	// codeCookieDomain (400): the portal asked to send a user on to a host
	// its session cookie does not reach (cookie_domain does not cover it).
	codeCookieDomain = errorCode{"cookie_domain"}

	// codeWeakPassword (400, with "reason" in words): a new password the
	// rules refuse.
	codeWeakPassword = errorCode{"weak_password"}
	// codeConfigUser (409): changing the password of a user whose
	// password is not kept in the database (a `user` line).
	codeConfigUser = errorCode{"config_user"}

	// codePasskeysOff (404): a passkey request on a block without passkeys
	// or outside a secure context, or a sign-in with a passkey alone where
	// passkey_login is off.
	codePasskeysOff = errorCode{"passkeys_off"}
	// codeNoPasskeys (404): asking for passkey options (for the second
	// factor, to turn 2FA off, for new backup codes or a new password) as
	// a user with no passkey for this site.
	codeNoPasskeys = errorCode{"no_passkeys"}
	// codeInvalidPasskey: a passkey answer that does not verify, 400 when
	// adding one, 401 when signing in or making new backup codes (there
	// also for an answer to a challenge that has expired, or that another
	// session or another purpose asked for).
	codeInvalidPasskey = errorCode{"invalid_passkey"}
	// codePasskeyExpired (400): adding a passkey with an answer to a
	// challenge that has expired.
	codePasskeyExpired = errorCode{"passkey_expired"}
	// codeLastFactor (409): removing the last second factor where the
	// block requires one.
	codeLastFactor = errorCode{"last_factor"}

	// codeAppPasswordsOff (404): an app-password page on a block without
	// app passwords.
	codeAppPasswordsOff = errorCode{"app_passwords_off"}
	// codeSecondFactorRequired (403): making an app password from a
	// session that has not proven a second factor.
	codeSecondFactorRequired = errorCode{"second_factor_required"}
	// codeTooManyAppPasswords (409): making an app password beyond the
	// number a user may have.
	codeTooManyAppPasswords = errorCode{"too_many_app_passwords"}
	// codeAppPasswordGone (410): a new app password is no longer shown
	// (shown once, to the browser that made it).
	codeAppPasswordGone = errorCode{"app_password_gone"}
	// codeOutOfScope (403): an app password used outside its scope.
	codeOutOfScope = errorCode{"out_of_scope"}
)
