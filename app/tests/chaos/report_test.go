package chaos

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// row is one scenario's line in the reliability table.
type row struct {
	name    string
	buyers  int
	units   int
	ran     bool // the checker ran (false: setup or the fault itself failed)
	v       verdict
	a       auditResult // the answer audit (answers_test.go)
	failed  bool
	elapsed time.Duration
	note    string // why the checker did not run
}

// reportTable collects rows from the scenarios, in the order they ran.
type reportTable struct {
	mu   sync.Mutex
	rows []row
}

func (r *reportTable) add(x row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, x)
}

// print writes the Markdown table and one PASS/FAIL line per scenario.
//
// Columns: accepted counts distinct orders the system took (202s, plus
// orders a buyer learned of from 409 already_purchased after a broken
// connection); lost counts accepted orders that did not end confirmed, or
// failed with their unit back in stock, within the settle wait; duplicated
// counts users holding two confirmed orders or accepted under two ids;
// oversold is max(0, confirmed − stock). Time to recover is measured from
// the fault's end (the restarted process or server answering again, or the
// kill itself when nothing is restarted): "sales +X" is the first 202 after
// it, "settled +Y" the first moment the checker saw every accepted order
// final and the stats at pending 0 and consistent.
//
// The answer columns (answers_test.go) audit what buyers were told:
// "202 → failed" counts 202s whose order ended failed, against its bound
// (the writes the fault let the ledger lose; 0 when it loses none);
// "refused, holding" counts buyers told only 503/429/403/409 sold_out who
// hold an order (bound 0); "surplus" counts units the ledger shows that the
// database does not have at the end (bound 0). The notes below the table
// say how each bound was counted.
func (r *reportTable) print(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| scenario | load (buyers / units) | accepted | lost | duplicated | oversold | 202 → failed (≤ bound) | refused, holding (≤ 0) | surplus in Redis (≤ 0) | time to recover |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range r.rows {
		if !x.ran {
			fmt.Fprintf(w, "| %s | %d / %d | – | – | – | – | – | – | – | not measured: %s |\n", x.name, x.buyers, x.units, x.note)
			continue
		}
		fmt.Fprintf(w, "| %s | %d / %d | %d | %d | %d | %d | %d (≤ %d) | %d | %d | %s |\n",
			x.name, x.buyers, x.units, x.v.accepted, x.v.lost, x.v.duplicated, x.v.oversold,
			x.a.acceptedFailed, x.a.lost, x.a.refusedHolding, x.a.surplus, recovery(x.v))
	}
	fmt.Fprintln(w)
	for _, x := range r.rows {
		if x.ran && x.a.lossHow != "" {
			fmt.Fprintf(w, "%s: the 202 → failed bound is the ledger's lost writes, counted as %s; %d of those failed 202s were answered more than %s after the fault (must be 0)\n",
				x.name, x.a.lossHow, x.a.late, lateAfter)
		}
	}
	fmt.Fprintln(w)
	for _, x := range r.rows {
		verdict := "PASS"
		if x.failed {
			verdict = "FAIL"
		}
		line := fmt.Sprintf("%s %s (%s)", verdict, x.name, x.elapsed.Round(100*time.Millisecond))
		switch {
		case !x.ran:
			line += ": " + x.note
		case len(x.v.problems) > 0:
			line += ": " + strings.Join(x.v.problems, "; ")
		}
		if x.ran && x.v.unacknowledged > 0 {
			line += fmt.Sprintf(" (note: %d confirmed orders whose buyer never saw the 202)", x.v.unacknowledged)
		}
		fmt.Fprintln(w, line)
	}
}

// recovery renders the time-to-recover cell.
func recovery(v verdict) string {
	var sales string
	switch {
	case v.resumedIn >= 0:
		sales = "sales +" + secs(v.resumedIn)
	case v.soldOutBy:
		sales = "sold out before the fault ended"
	default:
		sales = "no sale after the fault"
	}
	settled := "not settled within " + settleWait.String()
	if v.settledIn >= 0 {
		settled = "settled +" + secs(v.settledIn)
	}
	return sales + ", " + settled
}

// secs shows sub-second times in milliseconds, so a fast recovery does not
// read as "0.0s".
func secs(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
