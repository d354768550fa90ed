package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/totp-auth/totp_auth/internal/operator"
	"go.uber.org/zap"
)

// adminCall sends one request to the admin API's handler as Caddy's admin
// endpoint would, and returns the recorder and the handler's error.
func adminCall(t *testing.T, method, target, body string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	return adminCallAs(t, method, target, "application/json", body)
}

// adminCallAs is adminCall with the body sent as contentType.
func adminCallAs(t *testing.T, method, target, contentType, body string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	a := &AdminAPI{logger: zap.NewNop()}
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	return rec, a.serve(rec, req)
}

func apiStatus(t *testing.T, err error) int {
	t.Helper()
	var apiErr caddy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want a caddy.APIError", err)
	}
	return apiErr.HTTPStatus
}

// adminDB provisions a handler with carol in its `user` lines, so that
// its database is open in the pool, and returns the database's path.
func adminDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "totp.db")
	mustProvision(t, &TOTPAuth{DBPath: path, EncryptionKey: key64, Users: map[string]string{"carol": bcryptHash}})
	return path
}

func TestAdminAPI_ChangesNeedPOST(t *testing.T) {
	db := adminDB(t)
	for _, op := range []string{"users/add", "users/passwd", "users/remove", "users/reset-2fa", "users/unlock", "rotate-key", "backup"} {
		_, err := adminCall(t, http.MethodGet, "/totp-auth/"+op+"?db="+db, "")
		if apiStatus(t, err) != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %v, want 405", op, err)
		}
	}
	if _, err := adminCall(t, http.MethodPost, "/totp-auth/users", `{"db":"`+db+`"}`); apiStatus(t, err) != http.StatusMethodNotAllowed {
		t.Errorf("POST users: %v, want 405", err)
	}
}

func TestAdminAPI_ChangesNeedAJSONBody(t *testing.T) {
	db := adminDB(t)
	body := `{"db":"` + db + `","user":"carol"}`
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		if _, err := adminCallAs(t, http.MethodPost, "/totp-auth/users/unlock", ct, body); apiStatus(t, err) != http.StatusUnsupportedMediaType {
			t.Errorf("POST with Content-Type %q: %v, want 415", ct, err)
		}
	}
	if _, err := adminCallAs(t, http.MethodPost, "/totp-auth/users/unlock", "application/json; charset=utf-8", body); err != nil {
		t.Errorf("POST with JSON: %v", err)
	}
}

func TestAdminAPI_WrongMethodNamesTheAllowedOnes(t *testing.T) {
	db := adminDB(t)
	for _, tc := range []struct{ method, op, allow string }{
		{http.MethodGet, "users/unlock", "POST"},
		{http.MethodPost, "users", "GET, HEAD"},
	} {
		rec, err := adminCall(t, tc.method, "/totp-auth/"+tc.op+"?db="+db, `{"db":"`+db+`"}`)
		if apiStatus(t, err) != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: %v, Allow %q, want 405 with Allow %q", tc.method, tc.op, err, rec.Header().Get("Allow"), tc.allow)
		}
	}
}

func TestAdminAPI_AddAndListWithoutRevealingHashes(t *testing.T) {
	db := adminDB(t)
	hash := string(mustHash(t, "pw"))
	body, _ := json.Marshal(adminRequest{DB: db, User: "bob", PasswordHash: hash})
	rec, err := adminCall(t, http.MethodPost, "/totp-auth/users/add", string(body))
	if err != nil || !strings.Contains(rec.Body.String(), "Added bob") {
		t.Fatalf("add: %v %s", err, rec.Body)
	}

	rec, err = adminCall(t, http.MethodGet, "/totp-auth/users?db="+db, "")
	if err != nil {
		t.Fatal(err)
	}
	var l operator.Listing
	if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	if u := findUser(l, "bob"); u == nil || u.Source != operator.SourceDatabase {
		t.Errorf("bob = %+v", u)
	}
	if u := findUser(l, "carol"); u == nil || u.Source != operator.SourceConfig {
		t.Errorf("carol = %+v", u)
	}
	if strings.Contains(rec.Body.String(), "$2a$") || strings.Contains(rec.Body.String(), hash) {
		t.Errorf("the listing reveals a hash: %s", rec.Body)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Error("the listing may be cached")
	}
}

func TestAdminAPI_RefusalsKeepTheirStatus(t *testing.T) {
	db := adminDB(t)
	tests := []struct {
		name, op, body string
		status         int
	}{
		{"Caddyfile user", "users/add", `{"db":"` + db + `","user":"carol","password_hash":"` + bcryptHash + `"}`, http.StatusConflict},
		{"unknown user", "users/remove", `{"db":"` + db + `","user":"nobody"}`, http.StatusNotFound},
		{"bad hash", "users/add", `{"db":"` + db + `","user":"bob","password_hash":"hunter2"}`, http.StatusBadRequest},
		{"unknown field", "users/add", `{"db":"` + db + `","user":"bob","password":"hunter2"}`, http.StatusBadRequest},
		{"database not open", "users/remove", `{"db":"/nowhere/totp.db","user":"bob"}`, http.StatusNotFound},
		{"unknown operation", "users/frobnicate", `{"db":"` + db + `"}`, http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adminCall(t, http.MethodPost, "/totp-auth/"+tc.op, tc.body)
			if got := apiStatus(t, err); got != tc.status {
				t.Errorf("status %d (%v), want %d", got, err, tc.status)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q echoes the request", err)
			}
		})
	}
}

func TestAdminAPI_DatabasesAndTheOnlyOpenOne(t *testing.T) {
	db := adminDB(t)
	rec, err := adminCall(t, http.MethodGet, "/totp-auth/databases", "")
	if err != nil {
		t.Fatal(err)
	}
	var l databasesListing
	if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil || len(l.Databases) != 1 || l.Databases[0] != db {
		t.Fatalf("databases = %s (%v), want [%s]", rec.Body, err, db)
	}
	// Without db, the only open database is meant.
	if rec, err := adminCall(t, http.MethodGet, "/totp-auth/users", ""); err != nil || !strings.Contains(rec.Body.String(), `"carol"`) {
		t.Fatalf("users without db: %v %s", err, rec.Body)
	}
	adminDB(t)
	_, err = adminCall(t, http.MethodGet, "/totp-auth/users", "")
	if apiStatus(t, err) != http.StatusConflict || !strings.Contains(err.Error(), "--db") {
		t.Errorf("users without db while two are open: %v, want 409 asking for --db", err)
	}
}

func TestAdminAPI_BackupEndsWithItsDigest(t *testing.T) {
	db := adminDB(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := (&AdminAPI{logger: zap.NewNop()}).serve(w, r); err != nil {
			http.Error(w, err.Error(), apiStatus(t, err))
		}
	}))
	defer srv.Close()
	var buf strings.Builder
	client, err := newAdminClient(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := client.backup(db, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes != int64(buf.Len()) || r.KeyID == "" || r.KeyFile != "" {
		t.Errorf("report %+v for %d bytes (configured key: no key file)", r, buf.Len())
	}
}

func TestAdminClient_BackupWithoutItsDigestIsRefused(t *testing.T) {
	for name, trailer := range map[string]string{"cut short": "", "damaged": strings.Repeat("0", 64)} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Trailer", backupDigestTrailer)
			_, _ = w.Write([]byte("half a database"))
			if trailer != "" {
				w.Header().Set(backupDigestTrailer, trailer)
			}
		}))
		client, err := newAdminClient(strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.backup("/x.db", io.Discard); err == nil {
			t.Errorf("%s: a backup without a matching digest was accepted", name)
		}
		srv.Close()
	}
	// The digest the admin API sends is the SHA-256 of the body.
	sum := sha256.Sum256([]byte("half a database"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", backupDigestTrailer)
		_, _ = w.Write([]byte("half a database"))
		w.Header().Set(backupDigestTrailer, hex.EncodeToString(sum[:]))
	}))
	defer srv.Close()
	client, _ := newAdminClient(strings.TrimPrefix(srv.URL, "http://"))
	if _, err := client.backup("/x.db", io.Discard); err != nil {
		t.Errorf("a whole backup was refused: %v", err)
	}
}

func TestAdminClient_NothingListeningMeansNotRunning(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	client, err := newAdminClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	var l databasesListing
	if err := client.call(http.MethodGet, "/totp-auth/databases", nil, &l); !errors.Is(err, errAdminNotRunning) {
		t.Errorf("err = %v, want errAdminNotRunning", err)
	}
	client, err = newAdminClient("unix/" + filepath.Join(t.TempDir(), "no.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.call(http.MethodGet, "/totp-auth/databases", nil, &l); !errors.Is(err, errAdminNotRunning) {
		t.Errorf("unix socket: err = %v, want errAdminNotRunning", err)
	}
}

func TestAdminClient_CaddyWithoutTheModuleIsNamed(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	client, err := newAdminClient(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	var l databasesListing
	err = client.call(http.MethodGet, "/totp-auth/databases", nil, &l)
	if err == nil || !strings.Contains(err.Error(), "built with the totp_auth module") {
		t.Errorf("err = %v", err)
	}
}

func TestAdminAPI_ListsAPageAtATime(t *testing.T) {
	db := adminDB(t) // carol is a `user` line
	d, err := findDatabase(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "bob", "dave"} {
		if _, err := d.users().Add(name, mustHash(t, "pw")); err != nil {
			t.Fatal(err)
		}
	}
	page := func(query string) operator.Listing {
		t.Helper()
		rec, err := adminCall(t, http.MethodGet, "/totp-auth/users?db="+db+query, "")
		if err != nil {
			t.Fatal(err)
		}
		var l operator.Listing
		if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := page("&limit=2")
	if len(l.Users) != 2 || l.Users[0].Name != "alice" || l.Users[1].Name != "bob" || l.Next != "bob" {
		t.Fatalf("first page of 2 = %+v next %q, want alice, bob and next bob", l.Users, l.Next)
	}
	l = page("&limit=2&after=" + l.Next)
	if len(l.Users) != 2 || l.Users[0].Name != "carol" || l.Users[1].Name != "dave" {
		t.Fatalf("second page = %+v, want carol (a `user` line) and dave", l.Users)
	}
	if l = page("&match=AV"); len(l.Users) != 1 || l.Users[0].Name != "dave" || l.Next != "" {
		t.Errorf("match av = %+v next %q, want dave alone", l.Users, l.Next)
	}
	for _, bad := range []string{"0", "1001", "x"} {
		if _, err := adminCall(t, http.MethodGet, "/totp-auth/users?db="+db+"&limit="+bad, ""); apiStatus(t, err) != http.StatusBadRequest {
			t.Errorf("limit %s: %v, want 400", bad, err)
		}
	}
}

// Caddy refuses any Origin on an admin endpoint that is a unix socket (it
// allows none there), so the commands send none on one, as Caddy's own do,
// and keep sending it over TCP.
func TestAdminClient_SendsNoOriginOnAUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	origins := make(chan []string, 2)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origins <- r.Header.Values("Origin")
		_, _ = w.Write([]byte(`{"databases":[]}`))
	})
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	tcp := httptest.NewServer(handler)
	t.Cleanup(tcp.Close)

	for _, tc := range []struct {
		address    string
		wantOrigin bool
	}{
		{"unix/" + sock + "|0600", false},
		{"unix/" + sock, false},
		{strings.TrimPrefix(tcp.URL, "http://"), true},
	} {
		client, err := newAdminClient(tc.address)
		if err != nil {
			t.Fatal(err)
		}
		var listing databasesListing
		if err := client.call(http.MethodGet, "/totp-auth/databases", nil, &listing); err != nil {
			t.Fatalf("%s: %v", tc.address, err)
		}
		if got := <-origins; (len(got) > 0) != tc.wantOrigin {
			t.Errorf("%s: Origin %q, want one: %v", tc.address, got, tc.wantOrigin)
		}
	}
}
