package operator

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/totp-auth/totp_auth/gateway/account"
	"github.com/totp-auth/totp_auth/internal/memstore"
	"github.com/totp-auth/totp_auth/internal/storetest"
)

func TestAppPasswords_PasswdRevokesThemAndSignOutKeepsThem(t *testing.T) {
	db := memstore.New()
	u := &Users{Store: db, DB: "test.db"}
	hash, err := bcrypt.GenerateFromPassword([]byte("old password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Add("dana", hash); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := account.AddAppPassword(db, "dana", storetest.AppPasswordFor("k1", "v", now), now); err != nil {
		t.Fatal(err)
	}
	if _, err := u.SignOut("dana"); err != nil {
		t.Fatal(err)
	}
	r, err := u.AppPasswords("dana", now)
	if err != nil || !strings.Contains(r.Message, "k1") || !strings.Contains(r.Message, "read-only, /dav") {
		t.Fatalf("after signout: %v %q", err, r.Message)
	}
	r, err = u.ChangePassword("dana", hash)
	if err != nil || !strings.Contains(r.Message, "revoked their app passwords") {
		t.Fatalf("passwd: %v %q", err, r.Message)
	}
	if a, _ := db.Account("dana"); len(a.AppPasswords) != 0 {
		t.Errorf("passwd left %d app passwords", len(a.AppPasswords))
	}
	if _, err := u.RevokeAppPassword("dana", "k1"); err == nil {
		t.Errorf("revoking a revoked app password succeeded")
	}
}
