package sale

import (
	"fmt"
	"slices"
	"time"
)

// LedgerSnapshot is what the stock ledger holds of one item, read in one
// atomic step: the sale's figures and every pending order.
type LedgerSnapshot struct {
	// Exists is false when the ledger has no sale for the item: it was
	// lost (a Redis restart without persistence, a failover to a replica
	// that lagged, a FLUSHALL) or never opened.
	Exists     bool
	StockLeft  int64
	StockTotal int64
	Gen        int64
	PriceCents int64
	StartsAt   time.Time
	EndsAt     time.Time
	Pending    []Order
	// Buckets is each stock bucket's own state, in bucket order, for an item
	// whose stock is split over several (one entry otherwise). StockLeft,
	// StockTotal and Gen are their sums, and StockLeft also counts the units
	// in transit between buckets; Exists is true only if every bucket is
	// live. A repair uses it to tell whether any bucket moved since.
	Buckets []BucketSnapshot
}

// BucketSnapshot is one stock bucket in a LedgerSnapshot.
type BucketSnapshot struct {
	Exists bool
	Gen    int64
	Total  int64
}

// BookState is the database's side of one item, for a comparison with the
// ledger: the item row, how many live orders it has, and the recorded fate
// of each order the ledger still holds as pending.
type BookState struct {
	Item Item
	// Live is how many orders hold a unit: confirmed or paid
	// (OrderStatus.Holds). Cancelled and expired orders gave theirs back.
	Live  int64
	Fates map[OrderID]Fate
}

// Reconciliation compares one item's ledger with the database and says
// what differs and what would make them agree.
type Reconciliation struct {
	Item ItemID
	// Missing: the ledger has no sale for an item the database has.
	Missing bool
	// Settle are pending orders the database has confirmed (whatever
	// became of them since): the ledger
	// only has to drop their records. Release are pending orders the
	// database has failed: their units go back.
	Settle  []OrderID
	Release []OrderID
	// Drop are pending orders the database has failed as phantoms
	// (Fate.Phantom): their records go, their units do not come back.
	Drop []OrderID
	// LivePending is how many pending orders the database has not decided.
	LivePending int64
	// Total is the database's stock_total the comparison used.
	Total int64
	// Live is the database's count of orders holding a unit (confirmed or
	// paid) the comparison used.
	Live int64
	// WantStock is the stock the ledger should show: every unit the
	// database has not sold and no undecided order holds.
	WantStock int64
	// StockDrift is WantStock minus the ledger's stock: positive means the
	// ledger would undersell (units stranded), negative that it would sell
	// units that do not exist.
	StockDrift int64
	// TotalDrift is the database's stock_total minus the ledger's.
	TotalDrift int64
	// WindowDrift and PriceDrift: the ledger's window or price is not the
	// database's (an admin change whose ledger step failed).
	WindowDrift bool
	PriceDrift  bool
	// Unrepairable explains a difference no repair of the ledger can fix:
	// the database's own accounts do not add up, or more units are out than
	// exist. Empty when there is none.
	Unrepairable string
}

// Reconcile compares a ledger snapshot with the database's state of the
// same item. The database is the record of what was sold (live orders) and
// of how many units exist (stock_total, restocks go there first); the
// ledger is the record of orders accepted and not yet decided. So the stock
// the ledger should show is stock_total - live orders - undecided pending
// orders, and it is that figure, not the database's stock_left, that a
// repair restores.
func Reconcile(snap LedgerSnapshot, db BookState) Reconciliation {
	r := Reconciliation{Item: db.Item.ID, Missing: !snap.Exists, Total: db.Item.StockTotal, Live: db.Live}
	for _, o := range snap.Pending {
		switch st := db.Fates[o.ID].Status; {
		case st.WasConfirmed():
			// Paid, cancelled and expired orders were confirmed first; a
			// returned one's unit comes back by its own return step.
			r.Settle = append(r.Settle, o.ID)
		case db.Fates[o.ID].Phantom():
			r.Drop = append(r.Drop, o.ID)
		case st == OrderFailed:
			r.Release = append(r.Release, o.ID)
		default:
			r.LivePending++
		}
	}
	slices.Sort(r.Settle)
	slices.Sort(r.Release)
	slices.Sort(r.Drop)
	r.WantStock = db.Item.StockTotal - db.Live - r.LivePending
	if snap.Exists {
		r.StockDrift = r.WantStock - snap.StockLeft
		r.TotalDrift = db.Item.StockTotal - snap.StockTotal
		r.WindowDrift = !snap.StartsAt.Equal(db.Item.StartsAt) || !snap.EndsAt.Equal(db.Item.EndsAt)
		r.PriceDrift = snap.PriceCents != db.Item.PriceCents
	}
	switch {
	case db.Item.StockLeft != db.Item.StockTotal-db.Live:
		r.Unrepairable = fmt.Sprintf("the database's own accounts differ: stock_left %d, stock_total %d, %d live orders",
			db.Item.StockLeft, db.Item.StockTotal, db.Live)
	case r.WantStock < 0:
		r.Unrepairable = fmt.Sprintf("%d units are out (%d sold, %d pending) but only %d exist; the surplus pending orders will be refused by the database",
			db.Live+r.LivePending, db.Live, r.LivePending, db.Item.StockTotal)
	}
	return r
}

// Drifted reports whether the ledger differs from the database in any way
// a repair would change.
func (r Reconciliation) Drifted() bool {
	return r.Missing || len(r.Settle) > 0 || len(r.Release) > 0 || len(r.Drop) > 0 || r.StockDrift != 0 ||
		r.TotalDrift != 0 || r.WindowDrift || r.PriceDrift
}

// String says what differs, in one line for logs and the CLI.
func (r Reconciliation) String() string {
	if !r.Drifted() && r.Unrepairable == "" {
		return fmt.Sprintf("item %d: ledger and database agree", r.Item)
	}
	s := fmt.Sprintf("item %d:", r.Item)
	if r.Missing {
		s += fmt.Sprintf(" ledger lost the sale (rebuild at stock %d);", max(r.WantStock, 0))
	}
	if r.StockDrift != 0 {
		s += fmt.Sprintf(" stock off by %+d (want %d);", -r.StockDrift, r.WantStock)
	}
	if r.TotalDrift != 0 {
		s += fmt.Sprintf(" stock_total off by %+d;", -r.TotalDrift)
	}
	if len(r.Settle) > 0 {
		s += fmt.Sprintf(" %d pending orders already confirmed;", len(r.Settle))
	}
	if len(r.Release) > 0 {
		s += fmt.Sprintf(" %d pending orders already failed;", len(r.Release))
	}
	if len(r.Drop) > 0 {
		s += fmt.Sprintf(" %d pending orders failed as phantoms;", len(r.Drop))
	}
	if r.WindowDrift {
		s += " sale window differs;"
	}
	if r.PriceDrift {
		s += " price differs;"
	}
	if r.Unrepairable != "" {
		s += " cannot repair: " + r.Unrepairable + ";"
	}
	return s[:len(s)-1]
}
