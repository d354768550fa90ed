package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/totp-auth/totp_auth/internal/operator"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI serves the operations of the `caddy totp-auth` commands on
// Caddy's admin endpoint, under /totp-auth/, for the databases the running
// configuration has open: bbolt lets one process open a database file, so
// while Caddy runs, the commands ask it to do the work.
//
// It is reachable exactly as the rest of the admin endpoint is (by default
// only on localhost, with Caddy's origin and host checks). It never
// answers with a secret or a password hash, and every change is a POST.
//
//	GET  /totp-auth/databases         the open databases
//	GET  /totp-auth/users?db=<path>   user list: one page, &limit=<n> (default
//	                                  and most 1000), &after=<next>, &match=<text>
//	POST /totp-auth/users/add         {"db", "user", "password_hash"}
//	POST /totp-auth/users/passwd      {"db", "user", "password_hash"}
//	POST /totp-auth/users/remove      {"db", "user"}
//	POST /totp-auth/users/reset-2fa   {"db", "user"}
//	POST /totp-auth/users/signout     {"db", "user"}
//	GET  /totp-auth/users/sessions?db=<path>&user=<name>   a user's sessions and devices
//	POST /totp-auth/users/end-session {"db", "user", "session"}
//	POST /totp-auth/users/unlock      {"db", "user"} or {"db", "ip"}
//	POST /totp-auth/rotate-key        {"db"}
//	POST /totp-auth/backup            {"db"}: the database file
type AdminAPI struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.totp_auth",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Provision sets up the logger.
func (a *AdminAPI) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	return nil
}

// Routes returns the routes under /totp-auth/.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// adminRoute is a path of the totp_auth admin API, under /totp-auth/.
type adminRoute string

// The routes: the user operations of package operator, and what only this
// module's databases offer.
const (
	routeDatabases         adminRoute = "databases"
	routeUsers                        = adminRoute(operator.OpListUsers)
	routeAddUser                      = adminRoute(operator.OpAddUser)
	routeSetPassword                  = adminRoute(operator.OpSetPassword)
	routeRemoveUser                   = adminRoute(operator.OpRemoveUser)
	routeResetTwoFactor               = adminRoute(operator.OpResetTwoFactor)
	routeUnlock                       = adminRoute(operator.OpUnlock)
	routeSignOut                      = adminRoute(operator.OpSignOut)
	routeAppPasswords                 = adminRoute(operator.OpAppPasswords)
	routeRevokeAppPassword            = adminRoute(operator.OpRevokeAppPassword)
	routeSessions                     = adminRoute(operator.OpSessions)
	routeEndSession                   = adminRoute(operator.OpEndSession)
	routePasskeys                     = adminRoute(operator.OpListPasskeys)
	routeRemovePasskey                = adminRoute(operator.OpRemovePasskey)
	routeRotateKey         adminRoute = "rotate-key"
	routeBackup            adminRoute = "backup"
)

// adminPrefix is where the routes are mounted in Caddy's admin API.
const adminPrefix = "/totp-auth/"

// path is the route's path in Caddy's admin API.
func (r adminRoute) path() string { return adminPrefix + string(r) }

// adminRequest is the body of every POST.
type adminRequest struct {
	DB           string `json:"db"`
	User         string `json:"user,omitempty"`
	IP           string `json:"ip,omitempty"`
	PasswordHash string `json:"password_hash,omitempty"`
	// Passkey is the id of a passkey, as `user passkeys` lists it.
	Passkey string `json:"passkey,omitempty"`
	// ID names an app password.
	ID string `json:"id,omitempty"`
	// Session is the id of the session users/end-session ends.
	Session string `json:"session,omitempty"`
}

// databasesListing answers GET /totp-auth/databases.
type databasesListing struct {
	Databases []string `json:"databases"`
}

// backupDigestTrailer carries the SHA-256 of a backup after its last byte,
// so the command can tell a complete copy from one cut short.
const backupDigestTrailer = "Totp-Auth-Backup-Sha256"

// A backup's response headers name the key the copy needs and, if it is in
// a key file, where that is.
const (
	backupKeyIDHeader   = "Totp-Auth-Key-Id"
	backupKeyFileHeader = "Totp-Auth-Key-File"
)

func (a *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	op := adminRoute(strings.TrimPrefix(r.URL.Path, adminPrefix))
	if op == routePasskeys {
		return servePasskeys(w, r)
	}
	if op == routeDatabases || op == routeUsers || op == routeSessions {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			return apiError(http.StatusMethodNotAllowed, "use GET")
		}
		if op == routeDatabases {
			listing := databasesListing{Databases: []string{}}
			for _, d := range openDatabases() {
				listing.Databases = append(listing.Databases, d.path)
			}
			return writeAdminJSON(w, listing)
		}
		d, err := findDatabase(r.URL.Query().Get("db"))
		if err != nil {
			return err
		}
		if op == routeSessions {
			listing, err := d.users().Sessions(r.URL.Query().Get("user"), time.Now())
			if err != nil {
				return adminFailure(err)
			}
			return writeAdminJSON(w, listing)
		}
		q, err := listQuery(r.URL.Query())
		if err != nil {
			return err
		}
		listing, err := d.users().ListPage(time.Now(), q)
		if err != nil {
			return adminFailure(err)
		}
		return writeAdminJSON(w, listing)
	}

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return apiError(http.StatusMethodNotAllowed, "use POST")
	}
	// Only JSON, as Caddy's own /load takes: a browser cannot send it
	// across origins without a preflight, which the admin endpoint refuses.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return apiError(http.StatusUnsupportedMediaType, "send the request body as Content-Type: application/json")
	}
	var req adminRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return apiError(http.StatusBadRequest, "the request body is not the JSON this endpoint takes: "+err.Error())
	}
	d, err := findDatabase(req.DB)
	if err != nil {
		return err
	}
	now := time.Now()
	var result any
	switch op {
	case routeAddUser:
		result, err = d.users().Add(req.User, []byte(req.PasswordHash))
	case routeSetPassword:
		result, err = d.users().ChangePassword(req.User, []byte(req.PasswordHash))
	case routeRemoveUser:
		result, err = d.users().Remove(req.User)
	case routeSignOut:
		result, err = d.users().SignOut(req.User)
	case routeEndSession:
		result, err = d.users().EndSession(req.User, req.Session, now)
	case routeResetTwoFactor:
		result, err = d.users().ResetTwoFactor(req.User, now)
	case routeRemovePasskey:
		result, err = d.users().RemovePasskey(req.User, req.Passkey)
	case routeUnlock:
		if req.IP != "" {
			result, err = d.users().UnlockIP(req.IP, now)
		} else {
			result, err = d.users().UnlockUser(req.User, now)
		}
	case routeAppPasswords:
		result, err = d.users().AppPasswords(req.User, now)
	case routeRevokeAppPassword:
		result, err = d.users().RevokeAppPassword(req.User, req.ID)
	case routeRotateKey:
		result, err = d.rotateKey()
	case routeBackup:
		return a.serveBackup(w, d)
	default:
		return apiError(http.StatusNotFound, "no such totp_auth operation: "+string(op))
	}
	if err != nil {
		return adminFailure(err)
	}
	a.logger.Info("operator changed the totp_auth database",
		zap.String("operation", string(op)), zap.String("db_path", d.path), zap.String("user", req.User), zap.String("ip", req.IP))
	return writeAdminJSON(w, result)
}

// serveBackup streams a consistent copy of the database, and its digest as
// a trailer once the copy is complete. An error midway leaves the trailer
// out, which the command reports.
func (a *AdminAPI) serveBackup(w http.ResponseWriter, d *database) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Trailer", backupDigestTrailer)
	sum := sha256.New()
	report, err := d.backup(io.MultiWriter(w, sum), func(r backupReport) {
		w.Header().Set(backupKeyIDHeader, r.KeyID)
		w.Header().Set(backupKeyFileHeader, r.KeyFile)
	})
	if err != nil {
		a.logger.Error("backup failed", zap.String("db_path", d.path), zap.Error(err))
		return nil
	}
	w.Header().Set(backupDigestTrailer, hex.EncodeToString(sum.Sum(nil)))
	a.logger.Info("backed up the totp_auth database", zap.String("db_path", d.path), zap.Int64("bytes", report.Bytes))
	return nil
}

// findDatabase returns the open database at path, or the only open one if
// path is empty.
func findDatabase(path string) (*database, error) {
	open := openDatabases()
	if path == "" {
		switch len(open) {
		case 1:
			return open[0], nil
		case 0:
			return nil, apiError(http.StatusNotFound, "no totp_auth database is open in this Caddy")
		}
		return nil, apiError(http.StatusConflict, "several totp_auth databases are open in this Caddy; name one with --db: "+paths(open))
	}
	path = filepath.Clean(path)
	for _, d := range open {
		if d.path == path {
			return d, nil
		}
	}
	return nil, apiError(http.StatusNotFound, fmt.Sprintf("database %s is not open in this Caddy (open: %s)", path, paths(open)))
}

func paths(list []*database) string {
	if len(list) == 0 {
		return "none"
	}
	s := make([]string, len(list))
	for i, d := range list {
		s[i] = d.path
	}
	return strings.Join(s, ", ")
}

func apiError(status int, msg string) error {
	return caddy.APIError{HTTPStatus: status, Err: errors.New(msg), Message: msg}
}

// adminFailure answers a refused operation with its status, anything else
// with 500.
func adminFailure(err error) error {
	var refused *operator.Refusal
	if errors.As(err, &refused) {
		return apiError(refused.Status, refused.Message)
	}
	return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
}

func writeAdminJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(v)
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminAPI)(nil)
	_ caddy.Provisioner = (*AdminAPI)(nil)
)

// Pages of the user listing: what one answer of the admin API holds at
// most, and so what listing 100,000 users costs Caddy at a time.
const maxListPage = 1000

// listQuery reads the filter and page of a user listing: limit (1 to
// maxListPage, default maxListPage), after (the next of the page before)
// and match (a part of the name).
func listQuery(v url.Values) (operator.ListQuery, error) {
	q := operator.ListQuery{Match: v.Get("match"), After: v.Get("after"), Limit: maxListPage}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListPage {
			return q, apiError(http.StatusBadRequest, fmt.Sprintf("limit %q is not a number from 1 to %d", s, maxListPage))
		}
		q.Limit = n
	}
	return q, nil
}
