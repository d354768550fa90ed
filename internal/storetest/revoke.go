package storetest

import (
	"testing"
	"time"

	"github.com/totp-auth/totp_auth/gateway"
)

func testRevokeSession(t *testing.T, open func(t *testing.T) gateway.Store) {
	t.Run("a revoked session is reported, others are not", func(t *testing.T) {
		s := open(t)
		if err := s.RevokeSession("alice", 7, t0.Add(time.Hour), t0); err != nil {
			t.Fatal(err)
		}
		st, err := s.SessionState("alice")
		if err != nil || !st.Revoked(7) || st.Revoked(8) {
			t.Fatalf("SessionState = %+v, %v; want session 7 revoked and 8 not", st, err)
		}
		if other, _ := s.SessionState("bob"); other.Revoked(7) {
			t.Fatal("a revocation of alice's session shows for bob")
		}
	})
	t.Run("revocations survive other writes of the account", func(t *testing.T) {
		s := open(t)
		if err := s.RevokeSession("alice", 7, t0.Add(time.Hour), t0); err != nil {
			t.Fatal(err)
		}
		if err := s.AcceptStep("alice", 100); err != nil {
			t.Fatal(err)
		}
		create, _ := enrollFor(secretA, t0)
		if _, err := s.PendingEnrollment("alice", t0, create); err != nil {
			t.Fatal(err)
		}
		if st, _ := s.SessionState("alice"); !st.Revoked(7) {
			t.Fatal("revocation lost by a later write")
		}
	})
	t.Run("a revocation is forgotten once its session would have expired", func(t *testing.T) {
		s := open(t)
		if err := s.RevokeSession("alice", 7, t0.Add(time.Hour), t0); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeSession("alice", 8, t0.Add(3*time.Hour), t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		st, _ := s.SessionState("alice")
		if st.Revoked(7) || !st.Revoked(8) {
			t.Fatalf("RevokedSessions %x: want 7 pruned, 8 kept", st.RevokedSessions)
		}
	})
	t.Run("past the limit every session ends", func(t *testing.T) {
		s := open(t)
		before, _ := s.SessionState("alice")
		for i := 0; i <= gateway.MaxRevokedSessions; i++ {
			if err := s.RevokeSession("alice", uint64(i+1), t0.Add(time.Hour), t0); err != nil {
				t.Fatal(err)
			}
		}
		st, _ := s.SessionState("alice")
		if st.Generation <= before.Generation {
			t.Fatalf("generation %d after %d revocations, want it raised", st.Generation, gateway.MaxRevokedSessions+1)
		}
		if len(st.RevokedSessions) > 8*gateway.MaxRevokedSessions {
			t.Fatalf("%d revocations kept, want at most %d", len(st.RevokedSessions)/8, gateway.MaxRevokedSessions)
		}
	})
}
