package operator

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// The passkey operations (SPEC §14): listing a user's passkeys, and
// removing one, e.g. one refused as a possible clone.

// PasskeyReport is one passkey as `caddy totp-auth user passkeys` shows
// it: no key material.
type PasskeyReport struct {
	// ID is the credential id, base64url as the account page shows it.
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	RPID     string     `json:"rp_id"`
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used,omitempty"`
}

// PasskeyListing answers `caddy totp-auth user passkeys <name>`.
type PasskeyListing struct {
	DB       string          `json:"db"`
	User     string          `json:"user"`
	Passkeys []PasskeyReport `json:"passkeys"`
}

// Passkeys lists a user's passkeys, oldest first.
func (u *Users) Passkeys(name string) (PasskeyListing, error) {
	name, err := UserName(name)
	if err != nil {
		return PasskeyListing{}, err
	}
	acct, err := u.Store.Account(name)
	if err != nil {
		return PasskeyListing{}, err
	}
	out := PasskeyListing{DB: u.DB, User: name, Passkeys: []PasskeyReport{}}
	for _, p := range acct.Passkeys {
		r := PasskeyReport{ID: base64.RawURLEncoding.EncodeToString(p.ID), Name: p.Name, RPID: p.RPID, Created: p.Created}
		if !p.LastUsed.IsZero() {
			last := p.LastUsed
			r.LastUsed = &last
		}
		out.Passkeys = append(out.Passkeys, r)
	}
	sort.SliceStable(out.Passkeys, func(i, j int) bool { return out.Passkeys[i].Created.Before(out.Passkeys[j].Created) })
	return out, nil
}

// RemovePasskey removes the passkey with this id (as Passkeys lists it)
// and ends the user's sessions, which it may have opened. Unlike the
// account page it may remove the last second factor: the user's next
// sign-in then enrolls again, as after reset-2fa.
func (u *Users) RemovePasskey(name, id string) (Report, error) {
	name, err := UserName(name)
	if err != nil {
		return Report{}, err
	}
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) == 0 {
		return Report{}, refuse(http.StatusBadRequest, "%q is not a passkey id: copy it from `caddy totp-auth user passkeys %s`", id, name)
	}
	var last bool
	err = u.Store.UpdateAccount(name, func(a *account.Account) error {
		if err := a.RemovePasskey(raw, false); err != nil {
			return err
		}
		last = !a.HasSecondFactor()
		a.EndSessions()
		return nil
	})
	if errors.Is(err, account.ErrNoPasskey) {
		return Report{}, refuse(http.StatusNotFound, "%s has no passkey %s: `caddy totp-auth user passkeys %s` lists theirs", name, id, name)
	}
	if err != nil {
		return Report{}, err
	}
	msg := fmt.Sprintf("Removed passkey %s of %s and signed them out everywhere.", id, name)
	if last {
		msg += " It was their last second factor: where 2FA is required, their next sign-in sets one up again."
	}
	return Report{DB: u.DB, Message: msg}, nil
}
