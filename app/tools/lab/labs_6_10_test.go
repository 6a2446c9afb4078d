package lab

import "testing"

func TestLabLostOrders(t *testing.T) {
	runLab(t, "lost-orders", 0.3, func(t *testing.T, rep Report) {
		if rep.Protected.Metric != 0 {
			t.Errorf("the outbox lost %v accepted orders", rep.Protected.Metric)
		}
	})
}

func TestLabDuplicateOrders(t *testing.T) {
	runLab(t, "duplicate-orders", 0.2, func(t *testing.T, rep Report) {
		if rep.Protected.Metric != 0 {
			t.Errorf("the idempotent worker recorded %v duplicate orders", rep.Protected.Metric)
		}
	})
}

func TestLabHotKey(t *testing.T) {
	runLab(t, "hot-key", 0.2, func(t *testing.T, rep Report) {
		// Without the shield every purchase is a Redis call.
		if rep.Unprotected.Metric != 1 {
			t.Errorf("naive guard: %v Redis calls per purchase, want 1", rep.Unprotected.Metric)
		}
	})
}

func TestLabUnpaidHold(t *testing.T) {
	runLab(t, "unpaid-hold", 0.3, func(t *testing.T, rep Report) {
		if rep.Protected.Metric != 0 {
			t.Errorf("with the payment window %v units stayed held by non-payers", rep.Protected.Metric)
		}
	})
}

func TestLabBreaker(t *testing.T) {
	runLab(t, "breaker", 1, func(t *testing.T, rep Report) {
		// The guarded path answers within its call deadline plus
		// scheduling; the naive one waits out the fault.
		if rep.Unprotected.Metric < float64(breakerStuck.Milliseconds()) {
			t.Errorf("naive ledger: p99 %vms, want the fault's seconds", rep.Unprotected.Metric)
		}
	})
}
