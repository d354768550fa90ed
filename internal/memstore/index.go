package memstore

import (
	"sort"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// ConfigUsers implements account.Store. In memory a look at every account
// is what a kept record would cost, so there is none.
func (s *Store) ConfigUsers() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for name, a := range s.accounts {
		if a.ConfigUser {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// PasswordModels implements account.Store.
func (s *Store) PasswordModels() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool)
	var models []string
	for _, a := range s.accounts {
		if m := account.HashModel(a.PasswordHash); m != "" && !seen[m] {
			seen[m] = true
			models = append(models, m)
		}
	}
	return models, nil
}

// AccountsAfter implements account.Store.
func (s *Store) AccountsAfter(after string, limit int) ([]account.Account, error) {
	all, err := s.Accounts()
	if err != nil {
		return nil, err
	}
	i := sort.Search(len(all), func(i int) bool { return all[i].Name > after })
	all = all[i:]
	if len(all) > limit {
		all = all[:max(limit, 0)]
	}
	return all, nil
}
