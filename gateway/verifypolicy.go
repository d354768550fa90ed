package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
)

// The per-app policy a caller adds to its verify URI (SPEC §12),
// ?allow_users=a,b&allow_groups=g, read strictly: a typo never widens who
// passes.

// verifyPolicies caches the policies read from verify queries, by query.
// Only accepted queries get in; a user named in one who is removed later
// stays accepted there, which lets nobody in, since nobody can sign in
// as that user.
type verifyPolicies = boundedCache[Policy]

// verifyPolicy reads the policy in query, the verify request's raw query.
// Anything but allow_users and allow_groups, a parameter given twice or
// empty, an empty name, a ';', a bad escape, or a user or group that does
// not exist is an error that names it.
//
// appQuery is the raw query of the original request. Caddy's forward_auth
// (and nginx's proxy_pass) keep the app's own query on the verify request
// when the configured verify URI has none; when query is exactly the app's
// own, parameters other than the two are the app's and are ignored, unless
// their name holds "allow" in any case (a misspelt policy that happens to
// match the client's query is still refused). The client then chooses any
// allow_* parameter, which only narrows who passes: the block's own policy
// applies as well.
func (g *Gateway) verifyPolicy(query, appQuery string) (Policy, error) {
	if query == "" {
		return Policy{}, nil
	}
	carried := query == appQuery
	key := "s" + query
	if carried {
		key = "c" + query
	}
	if p, ok := g.verifyPolicies.get(key); ok {
		return p, nil
	}
	p, err := g.parseVerifyPolicy(query, carried)
	if err == nil {
		g.verifyPolicies.put(key, p)
	}
	return p, err
}

func (g *Gateway) parseVerifyPolicy(query string, carried bool) (Policy, error) {
	if strings.Contains(query, ";") {
		return Policy{}, fmt.Errorf("the verify URI's query %q holds ';': separate parameters with '&'", query)
	}
	var p Policy
	seen := map[string]bool{}
	for _, pair := range strings.Split(query, "&") {
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return Policy{}, fmt.Errorf("verify parameter %q does not decode: %w", rawName, err)
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return Policy{}, fmt.Errorf("verify parameter %s: value %q does not decode: %w", name, rawValue, err)
		}
		if name != "allow_users" && name != "allow_groups" {
			if carried && !strings.Contains(strings.ToLower(name), "allow") {
				continue // the app's own parameter
			}
			return Policy{}, fmt.Errorf("verify parameter %q is neither allow_users nor allow_groups", name)
		}
		if seen[name] {
			return Policy{}, fmt.Errorf("verify parameter %s is given twice", name)
		}
		seen[name] = true
		list, err := nameList(name, value)
		if err != nil {
			return Policy{}, err
		}
		if name == "allow_users" {
			p.Users = list
		} else {
			p.Groups = list
		}
	}
	for _, u := range p.Users {
		known, err := g.knownUser(u)
		if err != nil {
			return Policy{}, err
		}
		if !known {
			return Policy{}, fmt.Errorf("verify parameter allow_users names %q, who is not a user", u)
		}
	}
	if err := checkPolicy(p, g.cfg.Groups, "verify URI"); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// nameList splits the comma-separated names of verify parameter param,
// refusing an empty one; user names come back canonical.
func nameList(param, value string) ([]string, error) {
	var list []string
	for _, v := range strings.Split(value, ",") {
		if v = strings.TrimSpace(v); v == "" {
			return nil, fmt.Errorf("verify parameter %s is empty or holds an empty name", param)
		}
		if param == "allow_users" {
			v = CanonicalUser(v)
		}
		list = append(list, v)
	}
	return list, nil
}

// knownUser reports whether name is a user of the configuration or of the
// database.
func (g *Gateway) knownUser(name string) (bool, error) {
	if _, ok := g.cfg.Users[name]; ok {
		return true, nil
	}
	a, err := g.cfg.Store.Account(name)
	if err != nil {
		return false, fmt.Errorf("look up user %q named in the verify URI: %w", name, err)
	}
	return a.Stored && a.PasswordHash != nil, nil
}

// forwardAuthCheck reports whether h carries the headers that only a
// forward-auth check sends (Caddy's forward_auth and Traefik send
// X-Forwarded-Method and -Uri, nginx's auth_request as configured for the
// portal X-Original-*); a browser or a balancer in front of the portal
// sends none of them.
func forwardAuthCheck(h http.Header) bool {
	return h["X-Forwarded-Method"] != nil || h["X-Forwarded-Uri"] != nil ||
		h["X-Original-Method"] != nil || h["X-Original-Url"] != nil
}

// misdirectedCheck refuses a forward-auth check sent to a path of the
// portal that is not a verify endpoint (a proxy's uri outside prefix, or
// the login page): whatever that path answers, a 2xx would be read as
// "allowed" (SPEC §12).
func (g *Gateway) misdirectedCheck(w http.ResponseWriter, r *http.Request) {
	if g.verifyLog.allow(g.cfg.Clock.Now()) {
		g.cfg.Logger.Warn("totp_auth verify: a forward-auth check reached "+strings.ToValidUTF8(truncate(r.URL.Path, maxVerifyReason), "")+
			", which is not a verify endpoint: point the proxy at "+g.pageURL(pathVerify)+" (Caddy forward_auth uri, Traefik address) or "+
			g.pageURL(pathVerifyNginx)+" (nginx proxy_pass)",
			zap.String("client_ip", g.cfg.ClientIP(r)))
	}
	w.Header().Set("Cache-Control", "no-store")
	jsonError(w, http.StatusBadRequest, codeBadRequest)
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
