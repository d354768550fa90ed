package caddymodule

import (
	"fmt"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// checkCookieDomain refuses a cookie_domain that is a public suffix
// (home.arpa, lan, com, co.uk, github.io): browsers drop a cookie set for
// one, so every sign-in would end on an empty login page again, with
// nothing in any log to say why.
func checkCookieDomain(domain string) error {
	d := strings.ToLower(strings.Trim(strings.TrimSpace(domain), "."))
	if d == "" {
		return nil
	}
	if _, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return nil
	}
	return fmt.Errorf("cookie_domain %q is a public suffix: browsers refuse a cookie for it, so nobody would stay signed in; "+
		"use a domain of your own under it, such as %q, and name the portal and the apps under that (auth.%s, app.%s)",
		domain, "lab."+d, "lab."+d, "lab."+d)
}
