package storage

import (
	"github.com/totp-auth/totp_auth/gateway/account"
	bolt "go.etcd.io/bbolt"
)

// putAccount writes rec for user as it stands, with the session state it
// implies, bypassing UpdateAccount: for tests that plant records.
func (db *DB) putAccount(tx *bolt.Tx, user string, rec accountRecord) error {
	if err := putAccountRecord(tx, user, rec); err != nil {
		return err
	}
	return db.putSessionState(tx, user, account.SessionStateOf(withheld(user, rec, true)))
}
