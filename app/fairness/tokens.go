package fairness

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"seckill/domain/sale"
)

// sigLen is how many bytes of HMAC-SHA256 a ticket or challenge carries:
// 128 bits, far beyond what an online forger can guess.
const sigLen = 16

// minter signs and checks tickets and challenges with one key. Both are
// stateless: what they bind (user, item, expiry, difficulty) is in the
// signature, so any instance with the same secret can check them; only
// their single use needs shared state (Redis).
type minter struct{ key []byte }

// newMinter derives the fairness key from the deployment secret, so a
// ticket can never pass for a session token or the other way round.
func newMinter(secret string) minter {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("seckill fairness v1"))
	return minter{key: m.Sum(nil)}
}

func (m minter) sign(parts ...string) string {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte(strings.Join(parts, "|")))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:sigLen])
}

func (m minter) valid(sig string, parts ...string) bool {
	return hmac.Equal([]byte(sig), []byte(m.sign(parts...)))
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand never fails on the platforms Go supports.
		panic(err)
	}
	return hex.EncodeToString(b)
}

// A ticket is "<expiry unix ms>.<id: 24 hex>.<signature>", signed over
// kind, item, user, expiry and id. The user and item are not in the clear:
// the purchase names both (token, path), and a ticket presented by anyone
// else, or for another item, fails the signature like a forgery does.
func (m minter) ticket(item sale.ItemID, user sale.UserID, exp time.Time) (token, id string) {
	id = randomHex(12)
	ms := strconv.FormatInt(exp.UnixMilli(), 10)
	return ms + "." + id + "." + m.sign("t", item.String(), string(user), ms, id), id
}

// maxTokenLen bounds what is even looked at; both token kinds are shorter.
const maxTokenLen = 128

// checkTicket returns the ticket's id and expiry if it is genuine, for this
// user and item, and unexpired at now.
func (m minter) checkTicket(token string, item sale.ItemID, user sale.UserID, now time.Time) (sale.Ticket, bool) {
	return m.checkKind("t", token, item, user, now)
}

// checkKind is checkTicket for tickets of the given kind ("t" purchase
// tickets, "q" admissions).
func (m minter) checkKind(kind, token string, item sale.ItemID, user sale.UserID, now time.Time) (sale.Ticket, bool) {
	if len(token) > maxTokenLen {
		return sale.Ticket{}, false
	}
	ms, rest, ok1 := strings.Cut(token, ".")
	id, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || len(id) != 24 || !m.valid(sig, kind, item.String(), string(user), ms, id) {
		return sale.Ticket{}, false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return sale.Ticket{}, false
	}
	exp := time.UnixMilli(n)
	if !now.Before(exp) {
		return sale.Ticket{}, false
	}
	return sale.Ticket{ID: id, ExpiresAt: exp}, true
}

// A challenge is "<expiry unix s>.<difficulty>.<id: 16 hex>.<signature>",
// signed over kind, item, user, expiry, difficulty and id, so a client can
// neither lower its difficulty nor use it for another user or item.
func (m minter) challenge(item sale.ItemID, user sale.UserID, exp time.Time, difficulty int) string {
	id := randomHex(8)
	s := strconv.FormatInt(exp.Unix(), 10)
	d := strconv.Itoa(difficulty)
	return s + "." + d + "." + id + "." + m.sign("c", item.String(), string(user), s, d, id)
}

type challengeClaims struct {
	id         string
	difficulty int
	expires    time.Time
}

// checkChallenge returns the claims of a genuine challenge for this user and
// item that is unexpired at now.
func (m minter) checkChallenge(token string, item sale.ItemID, user sale.UserID, now time.Time) (challengeClaims, bool) {
	if len(token) > maxTokenLen {
		return challengeClaims{}, false
	}
	f := strings.Split(token, ".")
	if len(f) != 4 || len(f[2]) != 16 || !m.valid(f[3], "c", item.String(), string(user), f[0], f[1], f[2]) {
		return challengeClaims{}, false
	}
	s, err1 := strconv.ParseInt(f[0], 10, 64)
	d, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return challengeClaims{}, false
	}
	exp := time.Unix(s, 0)
	if !now.Before(exp) {
		return challengeClaims{}, false
	}
	return challengeClaims{id: f[2], difficulty: d, expires: exp}, true
}

// MaxNonceLen bounds a proof-of-work nonce: decimal digits, at most 20.
const MaxNonceLen = 20

// validNonce accepts 1 to MaxNonceLen decimal digits.
func validNonce(n string) bool {
	if n == "" || len(n) > MaxNonceLen {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

// LeadingZeroBits is the number of leading zero bits of SHA-256(challenge
// ‖ nonce), the work a proof is measured in: it reaches d with probability
// 2^-d per nonce tried.
func LeadingZeroBits(challenge, nonce string) int {
	sum := sha256.Sum256([]byte(challenge + nonce))
	n := 0
	for _, b := range sum {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// Solve finds the smallest decimal nonce that gives challenge at least
// difficulty leading zero bits. It is what an honest client does (the sale
// page's worker, k6), here for tests and tools.
func Solve(challenge string, difficulty int) string {
	for i := uint64(0); ; i++ {
		n := strconv.FormatUint(i, 10)
		if LeadingZeroBits(challenge, n) >= difficulty {
			return n
		}
	}
}
