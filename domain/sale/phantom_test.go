package sale

import (
	"slices"
	"testing"
)

func TestFatePhantom(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		f    Fate
		want bool
	}{
		{Fate{Status: OrderFailed, Reason: ReasonLedgerRolledBack}, true},
		{Fate{Status: OrderFailed, Reason: "the user already holds another order for this item", Refused: true}, false},
		{Fate{Status: OrderFailed, Reason: "order stayed pending too long"}, false},
		{Fate{Status: OrderConfirmed, Reason: ReasonLedgerRolledBack}, false},
		{Fate{}, false},
	} {
		if got := c.f.Phantom(); got != c.want {
			t.Errorf("%+v.Phantom() = %v, want %v", c.f, got, c.want)
		}
	}
}

// TestReconcileDropsPhantomsReleasesTheRest: a pending order the database
// failed as a phantom is to be dropped, any other failed one released, and
// neither counts as holding a unit.
func TestReconcileDropsPhantomsReleasesTheRest(t *testing.T) {
	t.Parallel()
	it := Item{ID: 1, StockTotal: 10, StockLeft: 2}
	snap := LedgerSnapshot{Exists: true, StockLeft: 3, StockTotal: 10, Pending: []Order{{ID: "1-b"}, {ID: "1-a"}, {ID: "1-c"}}}
	r := Reconcile(snap, BookState{Item: it, Live: 8, Fates: map[OrderID]Fate{
		"1-a": {Status: OrderFailed, Reason: ReasonLedgerRolledBack},
		"1-b": {Status: OrderFailed, Reason: "relay gave up"},
	}})
	if !slices.Equal(r.Drop, []OrderID{"1-a"}) || !slices.Equal(r.Release, []OrderID{"1-b"}) || r.LivePending != 1 {
		t.Fatalf("drop %v release %v live pending %d; want [1-a], [1-b], 1", r.Drop, r.Release, r.LivePending)
	}
	if !r.Drifted() {
		t.Fatal("a pending phantom is drift the ledger must follow")
	}
}
