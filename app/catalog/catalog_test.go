package catalog

import "testing"

func TestConsistentRule(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                                                string
		ledgerTotal, dbTotal, ledgerLeft, pending, conf, db int64
		want                                                bool
	}{
		{"fresh sale", 100, 100, 100, 0, 0, 100, true},
		{"settled sale", 100, 100, 40, 0, 60, 40, true},
		{"orders in flight", 100, 100, 40, 10, 50, 50, true},
		{"oversold in the database", 100, 100, 0, 0, 101, -1, false},
		{"a unit leaked from the ledger", 100, 100, 39, 0, 60, 40, false},
		{"database stock not lowered", 100, 100, 40, 0, 60, 100, false},
		{"restock applied only in the ledger", 110, 100, 50, 0, 60, 40, false},
		// held = confirmed + paid; 20 cancelled or expired gave their units back to both stores.
		{"lifecycle: units returned in both stores", 100, 100, 60, 0, 40, 60, true},
		{"lifecycle: a return the ledger missed", 100, 100, 59, 0, 40, 60, false},
		{"lifecycle: a return the database missed", 100, 100, 60, 0, 40, 59, false},
	}
	for _, c := range cases {
		if got := Consistent(c.ledgerTotal, c.dbTotal, c.ledgerLeft, c.pending, c.conf, c.db); got != c.want {
			t.Errorf("%s: Consistent = %v, want %v", c.name, got, c.want)
		}
	}
}
