// Package paysim is a simulated payment provider: every charge succeeds at
// once and every refund is recorded. It stands where a real provider's
// adapter would plug into the lifecycle use case's Payments port, so the
// order lifecycle can be run and tested end to end without one.
package paysim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"

	"seckill/domain/sale"
)

// Provider is the simulated provider. The zero value is ready to use and
// safe for concurrent use.
type Provider struct {
	charges, refunds atomic.Uint64
}

// Charge succeeds and returns ref, or a fresh "sim-<hex>" reference when
// the buyer sent none.
func (p *Provider) Charge(_ context.Context, _ sale.Order, ref string) (string, error) {
	p.charges.Add(1)
	if ref != "" {
		return ref, nil
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "sim-" + hex.EncodeToString(b[:]), nil
}

// Refund succeeds and counts the refund.
func (p *Provider) Refund(context.Context, sale.Order, string) error {
	p.refunds.Add(1)
	return nil
}

// Counts returns how many charges and refunds the provider has seen.
func (p *Provider) Counts() (charges, refunds uint64) { return p.charges.Load(), p.refunds.Load() }
