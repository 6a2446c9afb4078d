// Package auth issues and checks the demo identity tokens. A token is
// "<base64url(user_id.expiry_unix)>.<base64url(HMAC-SHA256)>": it proves the
// server issued it for that user until that time, and nothing more.
//
// This is where a real identity provider plugs in: replace Signer with a
// verifier of your provider's tokens (OIDC/JWT) that returns a sale.UserID,
// and drop the login endpoint. Nothing else in the system knows how tokens
// are made.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"seckill/domain/sale"
)

// ErrUnauthorized means the token is missing, malformed, forged or expired.
var ErrUnauthorized = errors.New("unauthorized")

// Signer issues and verifies user tokens with one HMAC key. Every API
// instance must share the key, or tokens issued by one are refused by another.
type Signer struct {
	key []byte
	ttl time.Duration
	now func() time.Time
	// macs reuses keyed HMAC states: hmac.New allocates two SHA-256 states
	// per call, and Verify runs on every purchase.
	macs sync.Pool
}

// NewSigner returns a Signer. now may be nil for the wall clock.
func NewSigner(secret string, ttl time.Duration, now func() time.Time) *Signer {
	if now == nil {
		now = time.Now
	}
	s := &Signer{key: []byte(secret), ttl: ttl, now: now}
	s.macs.New = func() any { return hmac.New(sha256.New, s.key) }
	return s
}

// RandomSecret returns 32 random bytes in hex, for a key or admin token that
// nobody configured.
func RandomSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Issue returns a token for user valid until the returned time.
func (s *Signer) Issue(user sale.UserID) (string, time.Time) {
	exp := s.now().Add(s.ttl).UTC().Truncate(time.Second)
	payload := string(user) + "." + strconv.FormatInt(exp.Unix(), 10)
	p := base64.RawURLEncoding.EncodeToString([]byte(payload))
	return p + "." + base64.RawURLEncoding.EncodeToString(s.mac(p)), exp
}

// Verify returns the token's user, or ErrUnauthorized if the token is
// malformed, its signature does not match, or it has expired. Only the exact
// string Issue returned verifies: changing any byte of it fails.
func (s *Signer) Verify(token string) (sale.UserID, error) {
	p, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > 512 {
		return "", ErrUnauthorized
	}
	// Compare the signature in its encoded form. Decoding it first would
	// accept other spellings of the same bytes (the decoder ignores the
	// unused low bits of the last character, and CR/LF), so a token changed
	// by one byte would still verify.
	var buf [64]byte
	if !hmac.Equal([]byte(sig), base64.RawURLEncoding.AppendEncode(buf[:0], s.mac(p))) {
		return "", ErrUnauthorized
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return "", ErrUnauthorized
	}
	// User ids may contain '.', the expiry is digits only: the separator is
	// the last '.', never the first.
	i := strings.LastIndexByte(string(raw), '.')
	if i < 0 {
		return "", ErrUnauthorized
	}
	u, expS := string(raw[:i]), string(raw[i+1:])
	exp, err := strconv.ParseInt(expS, 10, 64)
	if err != nil || !s.now().Before(time.Unix(exp, 0)) {
		return "", ErrUnauthorized
	}
	user, err := sale.ParseUserID(u)
	if err != nil {
		return "", ErrUnauthorized
	}
	return user, nil
}

func (s *Signer) mac(payload string) []byte {
	m := s.macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(payload))
	sum := m.Sum(nil)
	s.macs.Put(m)
	return sum
}

// EqualToken compares a presented admin token with the configured one in
// constant time, so response timing does not reveal a prefix.
func EqualToken(presented, want string) bool {
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1
}
