package gateway

import (
	"net/url"
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
	return target
}
