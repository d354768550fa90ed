package gateway

import (
	"net/http"
	"strings"
)

// The route table of the built-in pages under the prefix.

// pagePath is a page under the prefix: the keys of the route table and
// every path a page links or redirects to, one typed list (the JSON API
// table of docs/api.md).
type pagePath string

const (
	pathIndex              pagePath = ""
	pathLogin              pagePath = "login"
	path2FA                pagePath = "2fa"
	pathSetup              pagePath = "setup"
	pathBackupCodes        pagePath = "backup-codes"
	pathCodes              pagePath = "codes"
	pathCodesText          pagePath = "codes.txt"
	pathDone               pagePath = "done"
	pathAccount            pagePath = "account"
	pathWhoami             pagePath = "whoami"
	pathDisable            pagePath = "disable"
	pathPassword           pagePath = "password"
	pathLogout             pagePath = "logout"
	pathLogoutAll          pagePath = "logout-all"
	pathSwitch             pagePath = "switch"
	pathContinue           pagePath = "continue"
	pathPasskeys           pagePath = "passkeys"
	pathPasskeyNew         pagePath = "passkeys/new"
	pathPasskeyRemove      pagePath = "passkeys/remove"
	pathPasskeyRename      pagePath = "passkeys/rename"
	path2FAOptions         pagePath = "2fa/options"
	pathLoginOptions       pagePath = "login/options"
	pathDisableOptions     pagePath = "disable/options"
	pathBackupCodesOptions pagePath = "backup-codes/options"
	pathPasswordOptions    pagePath = "password/options"
	pathAppPasswords       pagePath = "app-passwords"
	pathAppPasswordRevoke  pagePath = "app-passwords/revoke"
	pathAppPasswordNew     pagePath = "app-passwords/new"
	pathSessions           pagePath = "sessions"
	pathSessionEnd         pagePath = "sessions/end"
	pathSessionsEndOthers  pagePath = "sessions/end-others"
	pathDeviceForget       pagePath = "devices/forget"
	pathVerify             pagePath = "verify"
	pathVerifyNginx        pagePath = "verify/nginx"
)

// pageURL is the path of page p under the prefix.
func (g *Gateway) pageURL(p pagePath) string {
	if p == pathIndex {
		return g.cfg.Prefix
	}
	return g.cfg.Prefix + "/" + string(p)
}

// serveAuth routes the built-in pages. sub is the path below the prefix.
func (g *Gateway) serveAuth(w http.ResponseWriter, r *http.Request, sub string) {
	type route struct {
		get, post func(http.ResponseWriter, *http.Request)
	}
	routes := map[pagePath]route{
		pathIndex:       {get: g.getIndex},
		pathLogin:       {get: g.getLogin, post: g.postLogin},
		path2FA:         {get: g.getSecondFactor, post: g.postSecondFactor},
		pathSetup:       {get: g.getSetup, post: g.postSetup},
		pathBackupCodes: {get: g.getBackupCodes, post: g.postBackupCodes},
		pathCodes:       {get: g.getCodes},
		pathCodesText:   {get: g.getCodesText},
		pathDone:        {get: g.getDone},
		pathAccount:     {get: g.getAccount},
		pathWhoami:      {get: g.getWhoami},
		pathDisable:     {post: g.postDisable},
		pathPassword:    {post: g.postPassword},
		pathLogout:      {post: g.postLogout},
		pathLogoutAll:   {post: g.postLogoutAll},
		pathSwitch:      {get: g.getSwitch},
		pathContinue:    {get: g.getContinue},
		// Passkeys (SPEC §14).
		pathPasskeys:           {get: g.getPasskeys, post: g.postPasskeys},
		pathPasskeyNew:         {post: g.postPasskeyNew},
		pathPasskeyRemove:      {post: g.postPasskeyRemove},
		pathPasskeyRename:      {post: g.postPasskeyRename},
		path2FAOptions:         {post: g.postSecondFactorOptions},
		pathLoginOptions:       {post: g.postLoginOptions},
		pathDisableOptions:     {post: g.accountPasskeyOptions(ceremonyDisable)},
		pathBackupCodesOptions: {post: g.accountPasskeyOptions(ceremonyBackupCodes)},
		pathPasswordOptions:    {post: g.accountPasskeyOptions(ceremonyPassword)},
		// App passwords (apppasswordpages.go).
		pathAppPasswords:      {get: g.getAppPasswords, post: g.postAppPassword},
		pathAppPasswordRevoke: {post: g.postRevokeAppPassword},
		pathAppPasswordNew:    {get: g.getNewAppPassword},
		// Where the user is signed in (sessionlist.go, devices.go).
		pathSessions:          {get: g.getSessions},
		pathSessionEnd:        {post: g.postEndSession},
		pathSessionsEndOthers: {post: g.postEndOtherSessions},
		pathDeviceForget:      {post: g.postForgetDevice},
		// Handle answers GET and HEAD of verify before this table is built.
		pathVerify:      {get: g.getVerify},
		pathVerifyNginx: {get: g.getVerifyNginx},
	}
	rt, ok := routes[pagePath(sub)]
	if !ok {
		g.problem(w, r, problem{status: http.StatusNotFound, code: codeNotFound, msg: "There is no such page."}, page{Title: "Not found"})
		return
	}
	switch {
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && rt.get != nil:
		rt.get(w, r)
	case r.Method == http.MethodPost && rt.post != nil:
		if g.answerResent(w, r, sub) {
			return
		}
		rt.post(w, r)
	default:
		var allow []string
		if rt.get != nil {
			allow = append(allow, "GET", "HEAD")
		}
		if rt.post != nil {
			allow = append(allow, "POST")
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		jsonError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed)
	}
}
