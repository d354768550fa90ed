package postgres

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// App passwords live in two columns: app_passwords holds what a request
// with one checks (the trigger tells every instance when it changes), and
// app_password_use their last use, which is written at most once a minute
// each and changes nothing any instance keeps in memory, so writing it
// notifies no one.

// appPasswordUse is one entry of app_password_use, by app password id.
type appPasswordUse struct {
	At time.Time `json:"at"`
	IP string    `json:"ip,omitempty"`
}

// splitAppPasswords encodes ps into the two columns.
func splitAppPasswords(ps []account.AppPassword) (grants, uses []byte, err error) {
	kept := make([]account.AppPassword, len(ps))
	used := make(map[string]appPasswordUse)
	for i, p := range ps {
		if !p.LastUsed.IsZero() {
			used[p.ID] = appPasswordUse{At: p.LastUsed.UTC(), IP: p.LastUsedIP}
		}
		p.LastUsed, p.LastUsedIP = time.Time{}, ""
		kept[i] = p
	}
	if grants, err = json.Marshal(kept); err != nil {
		return nil, nil, fmt.Errorf("encode app passwords: %w", err)
	}
	if uses, err = json.Marshal(used); err != nil {
		return nil, nil, fmt.Errorf("encode app password use: %w", err)
	}
	return grants, uses, nil
}

// joinAppPasswords decodes the two columns.
func joinAppPasswords(grants, uses []byte) ([]account.AppPassword, error) {
	var ps []account.AppPassword
	if err := json.Unmarshal(grants, &ps); err != nil {
		return nil, fmt.Errorf("decode app passwords: %w", err)
	}
	if len(ps) == 0 {
		return nil, nil
	}
	var used map[string]appPasswordUse
	if err := json.Unmarshal(uses, &used); err != nil {
		return nil, fmt.Errorf("decode app password use: %w", err)
	}
	for i := range ps {
		if u, ok := used[ps[i].ID]; ok {
			ps[i].LastUsed, ps[i].LastUsedIP = u.At, u.IP
		}
	}
	return ps, nil
}
