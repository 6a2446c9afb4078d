// Package reqid names one HTTP request across the processes it touches: the
// API that accepted it, the outbox that published its order, and the worker
// that decided the order. The id travels in the request's context, in the
// X-Request-ID header both ways, on the order (sale.Order.RequestID) and in
// the order's Kafka message headers, so one grep finds every log line.
package reqid

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
)

// Header is the HTTP header a request id is read from and answered in.
const Header = "X-Request-ID"

// MaxLen is the longest request id accepted from a client; a longer or
// otherwise unusable one is replaced, never refused.
const MaxLen = 128

type ctxKey struct{}

// New returns a fresh id: 16 hex digits. It needs no crypto: an id is a
// name for logs, not a secret, and must cost nothing on the purchase path.
func New() string {
	var b [8]byte
	n := rand.Uint64() //nolint:gosec // G404: an id names log lines, it is no secret, and crypto/rand would cost the hot path
	for i := range b {
		b[i] = byte(n >> (8 * i)) //nolint:gosec // G115: keeping the low byte is the point
	}
	return hex.EncodeToString(b[:])
}

// Valid reports whether a client's id can be used as it is: 1 to MaxLen
// visible ASCII characters, so it is safe in a header, a log line and a
// Kafka header without escaping.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}
