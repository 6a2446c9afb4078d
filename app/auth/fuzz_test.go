package auth

import (
	"errors"
	"testing"
	"time"

	"seckill/domain/sale"
)

// The fuzz signer's key and clock are fixed, so that committed seed tokens
// stay valid: a fuzzer mutating a real token explores the paths past the
// signature check.
var fuzzNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func fuzzSigner() *Signer {
	return NewSigner("fuzz-secret-0123456789", time.Hour, func() time.Time { return fuzzNow })
}

// FuzzVerify checks that Verify, given any string, never panics and either
// returns ErrUnauthorized or a user id that ParseUserID accepts.
func FuzzVerify(f *testing.F) {
	s := fuzzSigner()
	for _, u := range []sale.UserID{"alice", "john.smith", "x."} {
		tok, _ := s.Issue(u)
		f.Add(tok)
	}
	for _, tok := range []string{"", ".", "..", "abc", "not.a-token", "YWxpY2UuMTc2NzIzMDAwMA.!!!", "\xff.\xff"} {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		u, err := s.Verify(tok)
		if err != nil {
			if !errors.Is(err, ErrUnauthorized) || u != "" {
				t.Fatalf("Verify(%q) = %q, %v; want \"\", ErrUnauthorized", tok, u, err)
			}
			return
		}
		if _, perr := sale.ParseUserID(string(u)); perr != nil {
			t.Fatalf("Verify(%q) accepted user %q, which ParseUserID refuses: %v", tok, u, perr)
		}
	})
}

// FuzzIssueVerify checks that every user id ParseUserID accepts survives
// Issue then Verify, and that changing any one byte of the token makes
// Verify refuse it: a token has exactly one spelling.
func FuzzIssueVerify(f *testing.F) {
	f.Add("alice", uint16(0), byte(1))
	f.Add("john.smith", uint16(5), byte(0x80))
	f.Add("a.b.c", uint16(40), byte(0x20))
	f.Add("x.", uint16(1000), byte(0xff))
	s := fuzzSigner()
	f.Fuzz(func(t *testing.T, user string, pos uint16, flip byte) {
		id, err := sale.ParseUserID(user)
		if err != nil {
			return
		}
		tok, _ := s.Issue(id)
		if got, err := s.Verify(tok); err != nil || got != id {
			t.Fatalf("Verify(Issue(%q)) = %q, %v", user, got, err)
		}
		if flip == 0 {
			flip = 1
		}
		b := []byte(tok)
		i := int(pos) % len(b)
		b[i] ^= flip
		if got, err := s.Verify(string(b)); err == nil {
			t.Fatalf("token for %q with byte %d changed (%q -> %q) still verifies as %q", user, i, tok[i], b[i], got)
		}
	})
}
