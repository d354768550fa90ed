package gateway

import (
	"net/http"
	"strings"
)

// The route table of the built-in pages under the prefix.

// serveAuth routes the built-in pages. sub is the path below the prefix.
func (g *Gateway) serveAuth(w http.ResponseWriter, r *http.Request, sub string) {
	type route struct {
		get, post func(http.ResponseWriter, *http.Request)
	}
	routes := map[string]route{
		"":             {get: g.getIndex},
		"login":        {get: g.getLogin, post: g.postLogin},
		"2fa":          {get: g.getSecondFactor, post: g.postSecondFactor},
		"setup":        {get: g.getSetup, post: g.postSetup},
		"backup-codes": {get: g.getBackupCodes, post: g.postBackupCodes},
		"codes":        {get: g.getCodes},
		"codes.txt":    {get: g.getCodesText},
		"done":         {get: g.getDone},
		"account":      {get: g.getAccount},
		"whoami":       {get: g.getWhoami},
		"disable":      {post: g.postDisable},
		"password":     {post: g.postPassword},
		"logout":       {post: g.postLogout},
		"logout-all":   {post: g.postLogoutAll},
		"switch":       {get: g.getSwitch},
		"continue":     {get: g.getContinue},
		// Passkeys (SPEC §14).
		"passkeys":        {get: g.getPasskeys, post: g.postPasskeys},
		"passkeys/new":    {post: g.postPasskeyNew},
		"passkeys/remove": {post: g.postPasskeyRemove},
		"passkeys/rename": {post: g.postPasskeyRename},
		"2fa/options":     {post: g.postSecondFactorOptions},
		"login/options":   {post: g.postLoginOptions},
		"disable/options": {post: g.postDisableOptions},
		// App passwords (apppasswordpages.go).
		"app-passwords":        {get: g.getAppPasswords, post: g.postAppPassword},
		"app-passwords/revoke": {post: g.postRevokeAppPassword},
		"app-passwords/new":    {get: g.getNewAppPassword},
		// Where the user is signed in (sessionlist.go, devices.go).
		"sessions":            {get: g.getSessions},
		"sessions/end":        {post: g.postEndSession},
		"sessions/end-others": {post: g.postEndOtherSessions},
		"devices/forget":      {post: g.postForgetDevice},
		// Handle answers GET and HEAD of verify before this table is built.
		"verify":       {get: g.getVerify},
		"verify/nginx": {get: g.getVerifyNginx},
	}
	rt, ok := routes[sub]
	if !ok {
		g.problem(w, r, problem{status: http.StatusNotFound, code: "not_found", msg: "There is no such page."}, page{Title: "Not found"})
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
		jsonError(w, http.StatusMethodNotAllowed, "method_not_allowed")
	}
}
