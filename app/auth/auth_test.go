package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"seckill/domain/sale"
)

func TestSigner(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := NewSigner("0123456789abcdef", time.Hour, clock)
	tok, exp := s.Issue("alice")
	if !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("expiry = %v", exp)
	}
	if u, err := s.Verify(tok); err != nil || u != "alice" {
		t.Fatalf("Verify(valid) = %q, %v", u, err)
	}
	other := NewSigner("another-secret-123", time.Hour, clock)
	forged, _ := other.Issue("alice")
	p, sig, _ := strings.Cut(tok, ".")
	tampered := p[:len(p)-2] + "xx." + sig

	// A 32-byte MAC is 43 characters whose last one carries 2 unused bits:
	// flipping the lowest gives another spelling of the same bytes.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	respelled := sig[:len(sig)-1] + string(alphabet[strings.IndexByte(alphabet, sig[len(sig)-1])^1])

	cases := map[string]string{
		"sig respelled":  p + "." + respelled,
		"sig with CRLF":  p + "." + sig[:10] + "\r\n" + sig[10:],
		"empty":          "",
		"no dot":         "abc",
		"forged":         forged,
		"tampered":       tampered,
		"bad base64 sig": p + ".!!!",
		"too long":       strings.Repeat("a", 600) + "." + sig,
	}
	for name, tok := range cases {
		if _, err := s.Verify(tok); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: Verify = %v, want ErrUnauthorized", name, err)
		}
	}
	later := NewSigner("0123456789abcdef", time.Hour, func() time.Time { return now.Add(time.Hour) })
	if _, err := later.Verify(tok); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("expired token: Verify = %v, want ErrUnauthorized", err)
	}
}

func TestEqualToken(t *testing.T) {
	t.Parallel()
	if !EqualToken("secret-token-xyz", "secret-token-xyz") || EqualToken("secret", "secret-token-xyz") || EqualToken("", "") {
		t.Fatal("EqualToken misjudged")
	}
}

// TestVerifyUserIDsWithDots fails if Verify splits the payload anywhere but
// at its last '.': every id below is one that sale.ParseUserID accepts.
func TestVerifyUserIDsWithDots(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSigner("0123456789abcdef", time.Hour, func() time.Time { return now })
	for _, id := range []sale.UserID{"john.smith", "a.b.c", "x.", ".x", ".", "..", "1.2", "a.-_.", sale.UserID(strings.Repeat(".", sale.MaxUserIDLen))} {
		if _, err := sale.ParseUserID(string(id)); err != nil {
			t.Fatalf("test case %q is not a valid user id: %v", id, err)
		}
		tok, _ := s.Issue(id)
		if u, err := s.Verify(tok); err != nil || u != id {
			t.Errorf("Verify(Issue(%q)) = %q, %v", id, u, err)
		}
	}
}
