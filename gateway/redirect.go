package gateway

import (
	"net/url"
	"path"
	"strings"
)

// SafeRedirect returns target if it is a path on this site, else "/".
// Browsers treat "//host" and "/\host" as other sites, and some servers
// read control characters in odd ways, so all of those are refused, as is
// anything with a scheme or host.
func SafeRedirect(target string) string {
	if target == "" || len(target) > 2048 || target[0] != '/' {
		return "/"
	}
	if strings.HasPrefix(target, "//") || strings.ContainsRune(target, '\\') {
		return "/"
	}
	for _, c := range target {
		if c < 0x20 || c == 0x7f {
			return "/"
		}
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	// Percent-encoding may hide a second slash or a backslash that a
	// downstream decoder turns back into one.
	if p, err := url.PathUnescape(u.EscapedPath()); err != nil || strings.HasPrefix(p, "//") || strings.ContainsRune(p, '\\') {
		return "/"
	}
	return cleanPath(target)
}

// cleanPath resolves dot segments and repeated slashes in the path part of
// target exactly as http.Redirect does for a browser's Location, so the
// JSON answer names the same target as the redirect: "/..//evil.example"
// is "/evil.example" both ways, never a path a script could turn into
// "//evil.example".
func cleanPath(target string) string {
	p, query := target, ""
	if i := strings.IndexByte(target, '?'); i >= 0 {
		p, query = target[:i], target[i:]
	}
	trailing := strings.HasSuffix(p, "/")
	p = path.Clean(p)
	if trailing && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p + query
}
