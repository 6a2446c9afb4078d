package catalog

import (
	"crypto/rand"
	"encoding/hex"
)

// randomKey makes an idempotency key for a restock the client did not key,
// so the ledger and the database still apply that one request once each.
func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "auto-" + hex.EncodeToString(b[:])
}
