package sale

import "time"

// LineConfig is what a waiting room needs of its item, passed with every
// call so that an admin's change reaches the line at once.
type LineConfig struct {
	// OpensAt is the sale's opening: joiners before it form the pre-queue,
	// shuffled once at the opening.
	OpensAt time.Time
	// AdmitPerSecond is the admission rate across all instances.
	AdmitPerSecond int64
	// MaxActive bounds admissions unexpired and unused at once; 0: only
	// the stock bounds them.
	MaxActive int64
	// AdmissionTTL is how long an admission lasts.
	AdmissionTTL time.Duration
}

// LineState is one reading of an item's waiting room, taken atomically.
type LineState struct {
	// Shuffled reports whether the line has opened: the pre-queue has its
	// places and admissions run.
	Shuffled bool
	// Tail is the last place given; Served the last place admitted (or
	// passed over). Places 1..Served have been admitted.
	Tail, Served int64
	// Stock is the ledger's live stock, -1 when the ledger has no sale.
	Stock int64
	// Active counts admissions unexpired and unused.
	Active int64
	// Admitted, Used and Expired count every admission given, used by a
	// purchase, and lapsed unused. A line begun again after a loss starts
	// Used from the database's buyers when the reconciler rebuilds the sale.
	Admitted, Used, Expired int64
	// Pre counts the buyers who joined before the opening.
	Pre int64
	// Now is the line's clock (Redis's) at the reading.
	Now time.Time
	// Born identifies this incarnation of the line (when it was created,
	// in Redis µs): a different Born means the line was lost and begun
	// again, and every place read before is gone.
	Born int64
}

// Waiting is how many buyers wait behind the admitted ones.
func (s LineState) Waiting() int64 { return max(s.Tail-s.Served, 0) + s.preWaiting() }

func (s LineState) preWaiting() int64 {
	if s.Shuffled {
		return 0
	}
	return s.Pre
}

// LinePlace is one buyer's standing in a line.
type LinePlace struct {
	// Place is the buyer's place, 1-based; 0 means they joined before the
	// opening and the shuffle has not placed them yet.
	Place int64
	// AdmittedUntil is when their admission expires; zero if they were
	// never admitted.
	AdmittedUntil time.Time
}
