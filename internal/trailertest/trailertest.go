// Package trailertest makes requests that carry a header as a trailer, for
// tests that check a trailer never reaches an upstream under a name the
// gateway sets.
package trailertest

import (
	"io"
	"net/http"
	"strings"
)

// NewRequest returns a chunked request with body that ends with the
// trailer name: value, as net/http's client sends one: the name announced
// before the body, the value set once the body is read to its end.
func NewRequest(method, url, body, name, value string) (*http.Request, error) {
	b := &trailerBody{r: strings.NewReader(body), name: name, value: value}
	req, err := http.NewRequest(method, url, b)
	if err != nil {
		return nil, err
	}
	req.ContentLength = -1
	req.Trailer = http.Header{name: nil}
	b.trailer = req.Trailer
	return req, nil
}

// trailerBody sets a trailer's value when the body is read to its end.
type trailerBody struct {
	r           io.Reader
	trailer     http.Header
	name, value string
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.trailer[b.name] = []string{b.value}
	}
	return n, err
}
