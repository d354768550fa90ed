package gateway

import (
	"fmt"
	"net/http"
	"strings"
)

// Gateway is the sign-in flow for one site. It is safe for concurrent use.
type Gateway struct {
	cfg Config
}

// New checks cfg, fills in its defaults and returns a ready Gateway.
func New(cfg Config) (*Gateway, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg}
	return g, nil
}

// Handle serves the built-in pages and gates everything else. When it
// returns ok, r carries the user header (and no client-supplied spelling of
// it) and may go on to the upstream; otherwise Handle has written the
// response itself.
func (g *Gateway) Handle(w http.ResponseWriter, r *http.Request) (user string, ok bool) {
	if strings.HasPrefix(r.URL.Path, g.cfg.Prefix+"/") || r.URL.Path == g.cfg.Prefix {
		http.Error(w, "not implemented", http.StatusNotImplemented)
		return "", false
	}
	http.Error(w, fmt.Sprintf("sign in at %s/login", g.cfg.Prefix), http.StatusUnauthorized)
	return "", false
}

// Middleware wraps next so that only signed-in requests reach it.
func (g *Gateway) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := g.Handle(w, r); ok {
			next.ServeHTTP(w, r)
		}
	})
}
