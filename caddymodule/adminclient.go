package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// This file holds the client of Caddy's admin endpoint that the commands
// use while Caddy runs. caddycmd.AdminAPIRequest does not fit: it wraps a
// refused dial with %v, so "Caddy is not running" cannot be told from any
// other failure, and it folds the JSON error answer of the totp_auth admin
// API into a generic message.

// errAdminNotRunning means nothing listens at the admin address: Caddy is
// not running there.
var errAdminNotRunning = errors.New("caddy's admin endpoint does not answer")

// adminClient talks to Caddy's admin endpoint, over TCP or a unix socket.
type adminClient struct {
	address string
	origin  string
	socket  bool // a unix socket, where Caddy checks no origin and allows none
	http    *http.Client
}

func newAdminClient(address string) (*adminClient, error) {
	na, err := caddy.ParseNetworkAddress(address)
	if err != nil || na.PortRangeSize() > 1 {
		return nil, fmt.Errorf("admin address %q: give one address, such as localhost:2019 or unix//run/caddy-admin.sock", address)
	}
	network, dialAddr, origin := na.Network, na.JoinHostPort(0), "http://"+na.JoinHostPort(0)
	if na.IsUnixNetwork() {
		// A unix socket address may end in |<permissions>.
		dialAddr, _, _ = strings.Cut(na.Host, "|")
		// Caddy checks no host on a socket; this one only satisfies net/http.
		origin = "http://127.0.0.1"
	}
	dialer := &net.Dialer{Timeout: 3 * time.Second}
	return &adminClient{
		address: address,
		origin:  origin,
		socket:  na.IsUnixNetwork(),
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, dialAddr)
			},
		}},
	}, nil
}

// request sends a request; errAdminNotRunning if nothing listens.
func (c *adminClient) request(method, uri string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.origin+uri, rd)
	if err != nil {
		return nil, err
	}
	if !c.socket {
		// Caddy allows no origin at all on a unix socket: like Caddy's own
		// commands, send none there.
		req.Header.Set("Origin", c.origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return nil, errAdminNotRunning
	}
	if err != nil {
		return nil, fmt.Errorf("caddy's admin endpoint at %s: %w", c.address, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, c.failure(resp)
	}
	return resp, nil
}

// failure turns an error answer into the message Caddy gave.
func (c *adminClient) failure(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var apiErr struct {
		Error string `json:"error"`
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && json.Unmarshal(b, &apiErr) == nil && apiErr.Error != "" {
		return errors.New(apiErr.Error)
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("the Caddy at %s has no totp_auth admin API: is it built with the totp_auth module? (HTTP %d)", c.address, resp.StatusCode)
	}
	return fmt.Errorf("caddy's admin endpoint at %s answered HTTP %d: %s", c.address, resp.StatusCode, strings.TrimSpace(string(b)))
}

// call sends a request and decodes the JSON answer into out.
func (c *adminClient) call(method, uri string, body, out any) error {
	resp, err := c.request(method, uri, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("caddy's admin endpoint at %s: unexpected answer: %w", c.address, err)
	}
	return nil
}

// backup streams the database's copy to w and checks that it arrived
// whole.
func (c *adminClient) backup(db string, w io.Writer) (backupReport, error) {
	resp, err := c.request(http.MethodPost, routeBackup.path(), adminRequest{DB: db})
	if err != nil {
		return backupReport{}, err
	}
	defer resp.Body.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, sum), resp.Body)
	if err != nil {
		return backupReport{}, fmt.Errorf("receive the backup: %w", err)
	}
	want := resp.Trailer.Get(backupDigestTrailer)
	if want == "" {
		return backupReport{}, errors.New("the backup was cut short: Caddy reported an error while writing it (see its log); nothing was written")
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != want {
		return backupReport{}, errors.New("the backup arrived damaged (its checksum differs); nothing was written")
	}
	return backupReport{
		DB:      db,
		Bytes:   n,
		KeyID:   resp.Header.Get(backupKeyIDHeader),
		KeyFile: resp.Header.Get(backupKeyFileHeader),
	}, nil
}
