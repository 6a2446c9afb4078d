package sale

import (
	"strings"
	"testing"
)

func TestReconcile(t *testing.T) {
	t.Parallel()
	it, _ := NewItem(draft())
	it.ID = 7
	it.StockTotal, it.StockLeft = 10, 6 // 4 sold
	p1, p2, p3 := NewOrder(it, "p1", t0), NewOrder(it, "p2", t0), NewOrder(it, "p3", t0)
	live := LedgerSnapshot{Exists: true, StockLeft: 5, StockTotal: 10, PriceCents: it.PriceCents,
		StartsAt: it.StartsAt, EndsAt: it.EndsAt, Pending: []Order{p1}}
	db := BookState{Item: it, Live: 4, Fates: map[OrderID]Fate{}}

	cases := []struct {
		name    string
		snap    func(LedgerSnapshot) LedgerSnapshot
		db      func(BookState) BookState
		drifted bool
		check   func(t *testing.T, r Reconciliation)
	}{
		{"in step: 4 sold, 1 pending, 5 left", nil, nil, false, func(t *testing.T, r Reconciliation) {
			if r.WantStock != 5 || r.LivePending != 1 {
				t.Fatalf("%+v", r)
			}
		}},
		{"lost deductions: the ledger shows 2 units that were sold", func(s LedgerSnapshot) LedgerSnapshot { s.StockLeft = 7; return s }, nil, true,
			func(t *testing.T, r Reconciliation) {
				if r.StockDrift != -2 || !strings.Contains(r.String(), "stock off by +2") {
					t.Fatalf("%+v %s", r, r)
				}
			}},
		{"pending orders the database decided", func(s LedgerSnapshot) LedgerSnapshot { s.Pending = []Order{p1, p2, p3}; s.StockLeft = 3; return s },
			func(b BookState) BookState {
				b.Fates = map[OrderID]Fate{p2.ID: {Status: OrderConfirmed}, p3.ID: {Status: OrderFailed}}
				b.Live = 5
				b.Item.StockLeft = 5
				return b
			}, true,
			func(t *testing.T, r Reconciliation) {
				// p2 is sold (in Live), p3 failed (its unit is owed back),
				// p1 still pending: want 10 - 5 - 1 = 4.
				if len(r.Settle) != 1 || r.Settle[0] != p2.ID || len(r.Release) != 1 || r.Release[0] != p3.ID || r.WantStock != 4 {
					t.Fatalf("%+v", r)
				}
			}},
		{"lost sale", func(s LedgerSnapshot) LedgerSnapshot { return LedgerSnapshot{} }, nil, true,
			func(t *testing.T, r Reconciliation) {
				if !r.Missing || r.WantStock != 6 || r.StockDrift != 0 {
					t.Fatalf("%+v", r)
				}
			}},
		{"restock only in the database", nil, func(b BookState) BookState { b.Item.StockTotal, b.Item.StockLeft = 13, 9; return b }, true,
			func(t *testing.T, r Reconciliation) {
				if r.TotalDrift != 3 || r.StockDrift != 3 || r.WantStock != 8 {
					t.Fatalf("%+v", r)
				}
			}},
		{"window and price moved in the database only", nil, func(b BookState) BookState {
			b.Item.EndsAt = b.Item.EndsAt.Add(1)
			b.Item.PriceCents++
			return b
		}, true, func(t *testing.T, r Reconciliation) {
			if !r.WindowDrift || !r.PriceDrift {
				t.Fatalf("%+v", r)
			}
		}},
		{"the database's own accounts differ", nil, func(b BookState) BookState { b.Item.StockLeft = 9; return b }, false,
			func(t *testing.T, r Reconciliation) {
				if r.Unrepairable == "" {
					t.Fatalf("%+v", r)
				}
			}},
		{"more out than exist", func(s LedgerSnapshot) LedgerSnapshot { s.Pending = []Order{p1, p2, p3}; s.StockLeft = 0; return s },
			func(b BookState) BookState { b.Item.StockTotal, b.Item.StockLeft, b.Live = 5, 0, 5; return b }, true,
			func(t *testing.T, r Reconciliation) {
				if r.WantStock != -3 || r.Unrepairable == "" {
					t.Fatalf("%+v", r)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, b := live, db
			b.Fates = map[OrderID]Fate{}
			if c.snap != nil {
				s = c.snap(s)
			}
			if c.db != nil {
				b = c.db(b)
			}
			r := Reconcile(s, b)
			if r.Drifted() != c.drifted {
				t.Fatalf("Drifted = %v, want %v: %s", r.Drifted(), c.drifted, r)
			}
			c.check(t, r)
		})
	}
}
