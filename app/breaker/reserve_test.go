package breaker

import (
	"context"
	"errors"
	"testing"
	"time"

	"seckill/domain/sale"
)

// stuckLedger is a ledger backend whose Reserve answers err once release
// is closed (never, if it stays open).
type stuckLedger struct {
	LedgerBackend
	release chan struct{}
	err     error
}

func (l *stuckLedger) Reserve(context.Context, sale.Order) (sale.Reservation, error) {
	<-l.release
	return sale.Reservation{}, l.err
}

// TestLedgerReserveGivenUpIsOutcomeUnknown: a Reserve the guard stopped
// waiting for (its deadline, or the caller's ctx ending) may still be
// applied, so its error matches sale.ErrOutcomeUnknown; an error the
// backend returned passes unchanged, and a breaker refusal was never sent.
// Without the classification in Ledger.Reserve the give-ups are plain
// deadline errors, which the purchase answered 503 "nothing taken".
func TestLedgerReserveGivenUpIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	o := sale.NewOrder(sale.Item{ID: 1, PriceCents: 1, StockTotal: 1, StockLeft: 1,
		StartsAt: time.Unix(0, 0), EndsAt: time.Unix(1<<40, 0)}, "u", time.Unix(1, 0))

	stuck := &stuckLedger{release: make(chan struct{})}
	defer close(stuck.release)
	l := NewLedger(stuck, NewBreaker("redis-ledger", Settings{CallTimeout: 10 * time.Millisecond, OpenFor: time.Hour}))
	if _, err := l.Reserve(context.Background(), o); !errors.Is(err, sale.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reserve past the call timeout: %v, want outcome unknown (deadline exceeded)", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Reserve(ctx, o); !errors.Is(err, sale.ErrOutcomeUnknown) {
		t.Fatalf("Reserve whose caller left: %v, want outcome unknown", err)
	}

	refused := errors.New("redisstock: reserve: dial tcp: connection refused")
	done := make(chan struct{})
	close(done)
	b := NewBreaker("redis-ledger", Settings{CallTimeout: time.Hour, OpenFor: time.Hour})
	l = NewLedger(&stuckLedger{release: done, err: refused}, b)
	for range 5 {
		if _, err := l.Reserve(context.Background(), o); err != refused { //nolint:errorlint // identity on purpose: the backend's error itself, unwrapped
			t.Fatalf("Reserve answered by the backend: %v, want the backend's error itself", err)
		}
	}
	if b.State() != "open" {
		t.Fatalf("breaker %s after 5 backend failures, want open", b.State())
	}
	if _, err := l.Reserve(context.Background(), o); !errors.Is(err, ErrOpen) || errors.Is(err, sale.ErrOutcomeUnknown) {
		t.Fatalf("Reserve through an open breaker: %v, want ErrOpen and not outcome unknown", err)
	}
}
