package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Reading the original request a proxy asks verify about, from its
// X-Forwarded-* or X-Original-* headers, and refusing every header that
// cannot be believed. Accepted answers are remembered by the exact headers
// they came from.

// original is the request a proxy asks about.
type original struct {
	method string
	// scheme and host (host[:port], canonical) of the original URL.
	scheme, host string
	// url is the original absolute URL, canonical.
	url string
	// query is the original URL's raw query.
	query string
}

// readOriginal reads the original request from the flavor's headers, and
// refuses it when a header is missing, empty, repeated, unparsable, names
// a host outside the portal's domains, or disagrees with the other
// flavor's headers where those are sent too.
func (g *Gateway) readOriginal(r *http.Request, flavor verifyFlavor) (original, error) {
	key := originalKey(r.Header, flavor)
	if o, ok := g.originals.get(key); ok {
		return o, nil
	}
	o, err := g.parseOriginal(r, flavor)
	if err == nil && len(key) <= maxOriginalKey {
		g.originals.put(key, o)
	}
	return o, err
}

// originalHeaderNames are every header readOriginal looks at, in both
// flavors: the answer depends on nothing else.
var originalHeaderNames = [...]string{"X-Forwarded-Method", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Uri", "X-Original-Url", "X-Original-Method"}

// originalKey is everything readOriginal's answer depends on, as one
// unambiguous string: the flavor, and per header the count of its values
// and each value with its length. Each header is looked up once.
func originalKey(h http.Header, flavor verifyFlavor) string {
	var vals [len(originalHeaderNames)][]string
	size := 1
	for i, name := range originalHeaderNames {
		vals[i] = h[name]
		size += 4
		for _, v := range vals[i] {
			size += len(v) + 6
		}
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteByte(byte('0' + flavor))
	for _, vs := range vals {
		b.WriteString(strconv.Itoa(len(vs)))
		b.WriteByte(';')
		for _, v := range vs {
			b.WriteString(strconv.Itoa(len(v)))
			b.WriteByte(':')
			b.WriteString(v)
		}
	}
	return b.String()
}

// originalCache remembers the answers of readOriginal that were accepted,
// by the exact headers they were read from, so that an app's requests do
// not parse the same URL again and again. Only accepted answers get in,
// under everything the answer depends on; portal domains are fixed for the
// life of a Gateway.
type originalCache = boundedCache[original]

// maxOriginalKey bounds the key of a cached answer. The headers an
// accepted answer was read from are short (the URL at most maxRedirectLen);
// a longer key holds a header of the other flavor that was not read, which
// a client can make as long as the server lets headers be, so its answer
// is not cached.
const maxOriginalKey = 3 * maxRedirectLen

// parseOriginal is readOriginal without the cache.
func (g *Gateway) parseOriginal(r *http.Request, flavor verifyFlavor) (original, error) {
	var o original
	var err error
	if flavor == forwardedHeaders {
		o, err = g.fromForwarded(r.Header)
		if err == nil && present(r.Header, "X-Original-URL") {
			err = g.agrees(o, r.Header, originalHeaders)
		}
	} else {
		o, err = g.fromOriginal(r.Header)
		if err == nil && (present(r.Header, "X-Forwarded-Host") || present(r.Header, "X-Forwarded-Proto") || present(r.Header, "X-Forwarded-Uri")) {
			err = g.agrees(o, r.Header, forwardedHeaders)
		}
	}
	return o, err
}

// agrees checks that the other flavor's headers, when sent as well, name
// the same request.
func (g *Gateway) agrees(o original, h http.Header, other verifyFlavor) error {
	var p original
	var err error
	if other == forwardedHeaders {
		p, err = g.fromForwarded(h)
	} else {
		p, err = g.fromOriginal(h)
	}
	if err != nil {
		return fmt.Errorf("contradictory headers: %w", err)
	}
	if p.url != o.url || p.method != o.method {
		return errors.New("contradictory headers: X-Forwarded-* and X-Original-* name different requests")
	}
	return nil
}

func present(h http.Header, name string) bool { return len(h.Values(name)) > 0 }

// single returns the one value of header name, refusing none, an empty one
// and more than one.
func single(h http.Header, name string) (string, error) {
	vs := h.Values(name)
	switch {
	case len(vs) == 0:
		return "", fmt.Errorf("%s is missing", name)
	case len(vs) > 1:
		return "", fmt.Errorf("%s is sent %d times", name, len(vs))
	case strings.TrimSpace(vs[0]) == "":
		return "", fmt.Errorf("%s is empty", name)
	case hasControl(vs[0]):
		return "", fmt.Errorf("%s holds control characters", name)
	}
	return vs[0], nil
}

func (g *Gateway) fromForwarded(h http.Header) (original, error) {
	method, err := single(h, "X-Forwarded-Method")
	if err != nil {
		return original{}, err
	}
	proto, err := single(h, "X-Forwarded-Proto")
	if err != nil {
		return original{}, err
	}
	host, err := single(h, "X-Forwarded-Host")
	if err != nil {
		return original{}, err
	}
	uri, err := single(h, "X-Forwarded-Uri")
	if err != nil {
		return original{}, err
	}
	if proto != "http" && proto != "https" {
		return original{}, fmt.Errorf("X-Forwarded-Proto %q is neither http nor https", proto)
	}
	if _, ok := g.portalHost(host); !ok {
		return original{}, fmt.Errorf("X-Forwarded-Host %q is not a host[:port] under the portal's domains", host)
	}
	if !strings.HasPrefix(uri, "/") {
		return original{}, fmt.Errorf("X-Forwarded-Uri %q is not a path", uri)
	}
	return g.originalOf(method, proto+"://"+host+uri)
}

func (g *Gateway) fromOriginal(h http.Header) (original, error) {
	method, err := single(h, "X-Original-Method")
	if err != nil {
		return original{}, err
	}
	raw, err := single(h, "X-Original-URL")
	if err != nil {
		return original{}, err
	}
	return g.originalOf(method, raw)
}

// originalOf checks method and the absolute URL raw of an original request.
func (g *Gateway) originalOf(method, raw string) (original, error) {
	if !letters(method) {
		return original{}, fmt.Errorf("method %q is not a word of letters", method)
	}
	if strings.ContainsAny(raw, "\\ #") {
		return original{}, errors.New("the original URL holds a backslash, space or '#'")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return original{}, fmt.Errorf("the original URL does not parse: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Opaque != "" || u.User != nil {
		return original{}, errors.New("the original URL is not an absolute http(s) URL without userinfo")
	}
	if !strings.HasPrefix(raw, u.Scheme+"://"+u.Host+"/") {
		return original{}, errors.New("the original URL's authority is not plain host[:port] followed by a path")
	}
	host, ok := g.portalHost(u.Host)
	if !ok {
		return original{}, fmt.Errorf("the original host %q is not under the portal's domains", u.Host)
	}
	// Percent-escapes in the path and query must decode.
	if _, err := url.PathUnescape(u.EscapedPath()); err != nil {
		return original{}, fmt.Errorf("the original path does not decode: %w", err)
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return original{}, fmt.Errorf("the original query does not decode: %w", err)
	}
	abs, ok := PortalTarget(u.Scheme+"://"+host+raw[len(u.Scheme)+3+len(u.Host):], g.portal, true)
	if !ok {
		return original{}, errors.New("the original URL is not one the portal may send a browser back to")
	}
	return original{method: strings.ToUpper(method), scheme: u.Scheme, host: host, url: abs, query: u.RawQuery}, nil
}

// letters reports whether s is a word of 1 to 16 ASCII letters.
func letters(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
