package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"seckill/domain/sale"
)

// The answer audit. The books (check_test.go) say whether units were lost,
// duplicated or oversold; the audit says whether what each buyer was told
// was true, per the answer contract (docs/PURCHASE-PATH.md):
//
//   - 202: the buyer holds a unit; the order ends confirmed (or later
//     paid, cancelled, expired), and failed only when the ledger itself
//     lost writes, at most once per write lost;
//   - 503, 429, 403, 409 sold_out: nothing was taken for the buyer by that
//     request;
//   - 504 outcome_unknown (and a broken connection): either is true, and
//     the buyer finds out with GET /api/v1/items/{id}/orders;
//   - 409 already_purchased: carries the order the buyer holds.
//
// Every purchase attempt's answer is recorded (answerLog.record, called by
// the load); after the settle wait, audit reads every order of the sale
// from the database and checks each answer against its buyer's orders. A
// scenario whose fault makes the ledger lose writes says when and where
// (stack.ledgerMayLose); the 202s answered in that window are the bound on
// how many 202s may end failed.
//
// It is a direct audit rather than a linearizability check with porcupine:
// see docs/RELIABILITY.md for why.

// lateAfter is how long after a fault ends a 202 must end confirmed: by
// then the reconciler has taken every phantom unit away (two passes of
// SECKILL_RECONCILE_EVERY), so a failed order answered later is a phantom
// sold again.
const lateAfter = 5 * time.Second

// answer is one purchase attempt as its buyer saw it.
type answer struct {
	user    string
	at      time.Time // when the answer arrived
	status  int       // HTTP status; 0: no answer (transport error)
	code    string    // the body's "error" code, "" on a 202
	orderID string    // the 202's, already_purchased's or outcome_unknown's
}

// refusal reports whether the answer promises that nothing was taken.
func (a answer) refusal() bool {
	switch {
	case a.status == 503, a.status == 429, a.status == 403:
		return true
	case a.status == 409 && a.code == "sold_out":
		return true
	}
	return false
}

// answerLog records every answer of a scenario's load. Safe for concurrent
// use.
type answerLog struct {
	mu  sync.Mutex
	all []answer
}

func (l *answerLog) record(user string, r reply, err error) {
	a := answer{user: user, at: time.Now()}
	if err == nil {
		a.status, a.code, a.orderID = r.status, r.str("error"), r.str("order_id")
	}
	l.mu.Lock()
	l.all = append(l.all, a)
	l.mu.Unlock()
}

func (l *answerLog) snapshot() []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]answer(nil), l.all...)
}

// acceptedIn counts the 202s and 409 already_purchased answered in
// [from, to] whose order was reserved from bucket (-1: any): the writes the
// ledger acknowledged then, which a rollback over that window takes back.
func (l *answerLog) acceptedIn(from, to time.Time, bucket int) int {
	n := 0
	for _, a := range l.snapshot() {
		if (a.status == 202 || (a.status == 409 && a.code == "already_purchased")) && !a.at.Before(from) && !a.at.After(to) &&
			(bucket < 0 || sale.OrderID(a.orderID).Bucket() == bucket) {
			n++
		}
	}
	return n
}

// lossWindow is where a fault lets the ledger lose writes: the 202s
// answered in [from, to] for orders of bucket (-1: any), at most, are the
// writes lost. how says it in words, for the table.
type lossWindow struct {
	from, to time.Time
	bucket   int
	how      string
}

// inLossWindow says whether an answer given at about `at` for order id falls
// in a window where the fault let the ledger lose writes.
func (s *stack) inLossWindow(at time.Time, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.losses {
		if !at.Before(w.from) && !at.After(w.to) && (w.bucket < 0 || sale.OrderID(id).Bucket() == w.bucket) {
			return true
		}
	}
	return false
}

// ledgerMayLose tells the audit that the fault may have made the ledger
// lose the writes it acknowledged between from and to (on bucket, -1 for
// any), described by how; the 202s answered then bound the 202s that may
// end failed. Call it from a scenario's fault; a scenario that never calls
// it may end no 202 failed.
func (s *stack) ledgerMayLose(from, to time.Time, bucket int, how string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.losses = append(s.losses, lossWindow{from: from, to: to, bucket: bucket, how: how})
}

// auditResult is what the audit found, and the bounds it held it to.
type auditResult struct {
	answers int // purchase answers recorded
	unknown int // 504 outcome_unknown and broken connections
	// acceptedFailed counts 202s whose order ended failed, late those
	// answered more than lateAfter after the fault ended.
	acceptedFailed, late int
	// lost is how many writes the ledger may have lost (the bound on
	// acceptedFailed); lossHow says how that was counted.
	lost    int
	lossHow string
	// refusedHolding counts buyers told only refusals who hold an order.
	refusedHolding int
	// surplus is the units the ledger shows beyond the database's
	// stock_left after the settle wait.
	surplus int64
	// wrongHolder counts 409 already_purchased answers whose order is not
	// the buyer's, or is not in the database.
	wrongHolder int
}

// audit checks every recorded answer against the sale's final orders and
// records a problem on v for every bound crossed. Call it after check.
func (s *stack) audit(l *load, faultEnd time.Time, v *verdict) auditResult {
	s.t.Helper()
	answers := l.heard.snapshot()
	res := auditResult{answers: len(answers)}
	s.mu.Lock()
	losses := append([]lossWindow(nil), s.losses...)
	s.mu.Unlock()
	var hows []string
	for _, w := range losses {
		res.lost += l.heard.acceptedIn(w.from, w.to, w.bucket)
		hows = append(hows, w.how)
	}
	res.lossHow = strings.Join(hows, "; ")

	orders, err := s.finalOrders(l.item)
	if err != nil {
		v.problem(s, "answer audit: %v", err)
		return res
	}
	holds := map[string]bool{} // users holding a unit
	for _, o := range orders {
		if o.holds {
			holds[o.user] = true
		}
	}
	refusedOnly := map[string]bool{} // users whose every answer was a refusal
	var lateIDs []string
	for _, a := range answers {
		if prev, seen := refusedOnly[a.user]; !seen || prev {
			refusedOnly[a.user] = a.refusal()
		}
		switch {
		case a.status == 0 || (a.status == 504 && a.code == "outcome_unknown"):
			res.unknown++
		case a.status == 202:
			if o, ok := orders[a.orderID]; ok && o.status == string(sale.OrderFailed) {
				res.acceptedFailed++
				if a.at.After(faultEnd.Add(lateAfter)) {
					res.late++
					lateIDs = append(lateIDs, fmt.Sprintf("%s (%s, +%s)", a.orderID, o.reason, secs(a.at.Sub(faultEnd))))
				}
			}
		case a.status == 409 && a.code == "already_purchased":
			o, ok := orders[a.orderID]
			switch {
			case !ok && s.inLossWindow(a.at, a.orderID):
				// The write that answered it was lost with the ledger's
				// writes: a broken promise, bounded like a 202 that ends
				// failed.
				res.acceptedFailed++
			case !ok || o.user != a.user:
				res.wrongHolder++
			}
		}
	}
	for user, only := range refusedOnly {
		if only && holds[user] {
			res.refusedHolding++
		}
	}
	if st, err := s.stats(l.item); err == nil {
		res.surplus = max(st.num("stock_left_redis")-st.num("stock_left_db"), 0)
	} else {
		v.problem(s, "answer audit: stats: %v", err)
	}

	s.holdToBounds(res, lateIDs, v)
	s.t.Logf("answer audit: %d answers (%d outcome unknown); 202 then failed %d (bound %d: %s), of them later than +%s %d; refused yet holding %d; ledger surplus %d",
		res.answers, res.unknown, res.acceptedFailed, res.lost, orNone(res.lossHow), lateAfter, res.late, res.refusedHolding, res.surplus)
	return res
}

// holdToBounds records a problem on v for every audit column past its
// bound.
func (s *stack) holdToBounds(res auditResult, lateIDs []string, v *verdict) {
	s.t.Helper()
	if res.acceptedFailed > res.lost {
		v.problem(s, "ANSWERS: %d buyers were told 202 and their orders ended failed; the ledger lost at most %d writes (%s)",
			res.acceptedFailed, res.lost, orNone(res.lossHow))
	}
	if res.late > 0 {
		sort.Strings(lateIDs)
		v.problem(s, "ANSWERS: %d orders answered 202 more than %s after the fault ended failed, e.g. %s",
			res.late, lateAfter, strings.Join(lateIDs[:min(3, len(lateIDs))], ", "))
	}
	if res.refusedHolding > 0 {
		v.problem(s, "ANSWERS: %d buyers were only ever refused (503/429/403/409 sold_out) yet hold an order", res.refusedHolding)
	}
	if res.surplus > 0 {
		v.problem(s, "ANSWERS: the ledger ends with %d units the database does not have", res.surplus)
	}
	if res.wrongHolder > 0 {
		v.problem(s, "ANSWERS: %d answers 409 already_purchased named an order the buyer does not hold", res.wrongHolder)
	}
}

func orNone(s string) string {
	if s == "" {
		return "no ledger write may be lost"
	}
	return s
}

// finalOrder is one order row as the audit reads it.
type finalOrder struct {
	user, status, reason string
	holds                bool // confirmed or paid
}

// finalOrders reads every order of the item from the database.
func (s *stack) finalOrders(item int64) (map[string]finalOrder, error) {
	db, err := sql.Open("mysql", s.mysqlDSN)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT order_id, user_id, status, COALESCE(reason, '') FROM orders WHERE item_id = ?", item)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	defer rows.Close()
	out := map[string]finalOrder{}
	for rows.Next() {
		var id string
		var o finalOrder
		if err := rows.Scan(&id, &o.user, &o.status, &o.reason); err != nil {
			return nil, fmt.Errorf("list orders: %w", err)
		}
		o.holds = sale.OrderStatus(o.status).Holds()
		out[id] = o
	}
	return out, rows.Err()
}
