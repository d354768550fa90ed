package storage

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/totp-auth/totp_auth/storage/secrets"
)

const testKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func TestParseKey_AcceptsWhatOpensslPrints(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"lower case", testKeyHex},
		{"upper case", strings.ToUpper(testKeyHex)},
		{"with a trailing newline from a key file", testKeyHex + "\n"},
		{"with surrounding spaces", "  " + testKeyHex + " "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := secrets.ParseKey(tt.in)
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			for i, b := range k {
				if int(b) != i {
					t.Fatalf("byte %d = %d, want %d", i, b, i)
				}
			}
		})
	}
}

func TestParseKey_RefusesBadKeysWithoutEchoingThem(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "has 0 characters"},
		{"too short", testKeyHex[:62], "has 62 characters"},
		{"too long", testKeyHex + "00", "has 66 characters"},
		{"a base64 key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "has 44 characters"},
		{"not hexadecimal", "zz" + testKeyHex[2:], "character 1 is not 0-9 or a-f"},
		{"a space inside", testKeyHex[:30] + " " + testKeyHex[31:], "character 31 is not"},
		{"all zeros", strings.Repeat("0", 64), "all zeros"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := secrets.ParseKey(tt.in)
			if err == nil {
				t.Fatal("ParseKey accepted it")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, "openssl rand -hex 32") {
				t.Errorf("error %q should say %q and how to make a key", msg, tt.want)
			}
			if len(tt.in) > 8 && strings.Contains(msg, tt.in[2:10]) {
				t.Errorf("error %q repeats the key", msg)
			}
		})
	}
}

func TestKey_FormatsShowOnlyTheID(t *testing.T) {
	k, err := secrets.ParseKey(testKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.ID()) != 8 {
		t.Errorf("ID %q, want 8 hex characters", k.ID())
	}
	for _, verb := range []string{"%v", "%s", "%#v", "%+v", "%x", "%q"} {
		out := fmt.Sprintf(verb, k)
		if strings.Contains(out, testKeyHex[8:24]) || strings.Contains(out, "[0 1 2 3") || strings.Contains(out, "0x0") {
			t.Errorf("%s prints the key: %s", verb, out)
		}
	}
}

func TestNewKey_IsRandom(t *testing.T) {
	a, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || a == (secrets.Key{}) {
		t.Error("NewKey returned the same key twice, or zeros")
	}
}

func TestSeal_OpensOnlyForTheSameOwnerPurposeAndKey(t *testing.T) {
	k1, _ := secrets.NewKey()
	k2, _ := secrets.NewKey()
	ring, err := secrets.NewKeyring([]secrets.Key{k1})
	if err != nil {
		t.Fatal(err)
	}
	other, err := secrets.NewKeyring([]secrets.Key{k2})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := ring.Seal(k1.KeyID(), secrets.PurposeTOTPSecret, "alice", []byte("JBSWY3DPEHPK3PXP"))
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := ring.Open(secrets.PurposeTOTPSecret, "alice", sealed); err != nil || string(plain) != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("open = %q, %v", plain, err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name    string
		ring    *secrets.Keyring
		purpose string
		owner   string
		sealed  []byte
	}{
		{"another owner", ring, secrets.PurposeTOTPSecret, "bob", sealed},
		{"another purpose", ring, secrets.PurposePendingSecret, "alice", sealed},
		{"a changed byte", ring, secrets.PurposeTOTPSecret, "alice", tampered},
		{"truncated", ring, secrets.PurposeTOTPSecret, "alice", sealed[:10]},
		{"a key not configured", other, secrets.PurposeTOTPSecret, "alice", sealed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.ring.Open(tt.purpose, tt.owner, tt.sealed); err == nil {
				t.Error("open succeeded")
			}
		})
	}
	if _, err := ring.Open(secrets.PurposeTOTPSecret, "bob", sealed); !errors.Is(err, secrets.ErrDecrypt) {
		t.Errorf("another owner: %v, want secrets.ErrDecrypt", err)
	}
}

func TestSeal_UsesAFreshNonceEachTime(t *testing.T) {
	k, _ := secrets.NewKey()
	ring, _ := secrets.NewKeyring([]secrets.Key{k})
	a, _ := ring.Seal(k.KeyID(), secrets.PurposeTOTPSecret, "alice", []byte("same"))
	b, _ := ring.Seal(k.KeyID(), secrets.PurposeTOTPSecret, "alice", []byte("same"))
	if bytes.Equal(a, b) {
		t.Error("two seals of the same secret are equal")
	}
}

func TestNewKeyring_RefusesTheSameKeyTwice(t *testing.T) {
	k, _ := secrets.NewKey()
	if _, err := secrets.NewKeyring([]secrets.Key{k, k}); err == nil {
		t.Error("secrets.NewKeyring accepted a key twice")
	}
}
