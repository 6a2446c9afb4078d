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

// settleWait bounds how long the checker waits for a sale to settle after
// the load. It exceeds SECKILL_RELAY_GIVE_UP (60 s in chaosEnv), so an order
// that recovery can only decide by giving it up still gets decided in time.
const settleWait = 90 * time.Second

// verdict is what the checker found for one scenario; it becomes a row of
// the table.
type verdict struct {
	accepted   int
	confirmed  int // accepted orders whose GET says confirmed
	soldDB     int // confirmed orders in the database
	failed     int // accepted orders whose GET says failed
	lost       int
	duplicated int
	oversold   int
	resumedIn  time.Duration // fault end → first 202 after it; <0: none
	settledIn  time.Duration // fault end → sale settled; <0: not within settleWait
	soldOutBy  bool          // sold out before the fault ended, so no 202 could follow
	// unacknowledged counts confirmed orders whose buyer never learned of
	// the acceptance; reported, not a failure.
	unacknowledged int
	// promisesLost counts orders a buyer learned of from a 409
	// already_purchased inside a window where the fault let the ledger lose
	// writes, and which never reached the database: the write that
	// answered them was lost. The answer audit bounds them with the 202s
	// that end failed; they are not counted as lost.
	promisesLost int
	problems     []string
}

// problem records a broken invariant on the test and on the row.
func (v *verdict) problem(s *stack, format string, args ...any) {
	s.t.Helper()
	msg := fmt.Sprintf(format, args...)
	v.problems = append(v.problems, msg)
	s.t.Error(msg)
}

// check waits (at most settleWait) for the sale to settle, then checks the
// invariants app/tests/e2e checks in process, here across processes:
//
//   - every accepted order ends confirmed or failed (GET /api/v1/orders/{id}
//     with the buyer's token), never queued and never 404;
//   - confirmed ≤ stock (counted in the database), no user holds two
//     confirmed orders (SQL) and no user was accepted twice;
//   - the admin stats show pending 0, consistent true and
//     stock_left_redis == stock_left_db == stock_total − confirmed, so every
//     failed order's unit is back and nothing was lost or duplicated;
//   - with allConfirmed, no accepted order failed;
//   - no process the test did not kill exited.
//
// Time to recover is measured from faultEnd: the first 202 after it, and
// the first moment the checker saw the sale settled (every accepted order
// final, pending 0, consistent).
func (s *stack) check(l *load, stock int, faultEnd time.Time, allConfirmed bool) verdict {
	s.t.Helper()
	l.mu.Lock()
	orders := append([]accepted(nil), l.orders...)
	twice := l.twice
	l.mu.Unlock()
	v := verdict{accepted: len(orders), resumedIn: -1, settledIn: -1}
	for _, o := range orders {
		if !o.recovered && o.at.After(faultEnd) && (v.resumedIn < 0 || o.at.Sub(faultEnd) < v.resumedIn) {
			v.resumedIn = o.at.Sub(faultEnd)
		}
	}
	if at := l.soldOutAt.Load(); at != 0 && time.Unix(0, at).Before(faultEnd) {
		v.soldOutBy = true
	}

	// Poll until every order is final and the stats settle, or the deadline.
	last := make([]string, len(orders)) // last status seen per order
	final := make([]bool, len(orders))
	var st reply
	var stErr error
	deadline := time.Now().Add(settleWait)
	for {
		s.pollOrders(orders, last, final)
		st, stErr = s.stats(l.item)
		allFinal := true
		for _, f := range final {
			allFinal = allFinal && f
		}
		if allFinal && stErr == nil && st.num("orders_pending") == 0 && st.body["consistent"] == true {
			v.settledIn = time.Since(faultEnd)
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}

	notFinal := map[string][]string{}
	for i, o := range orders {
		switch last[i] {
		case "confirmed":
			v.confirmed++
		case "failed":
			v.failed++
		default:
			if o.recovered && s.inLossWindow(o.at, o.orderID) {
				v.promisesLost++
				continue
			}
			notFinal[last[i]] = append(notFinal[last[i]], o.orderID)
		}
	}
	for status, ids := range notFinal {
		v.problem(s, "%d accepted orders did not end confirmed or failed within %s: last seen %q (e.g. %s)",
			len(ids), settleWait, status, strings.Join(ids[:min(3, len(ids))], ", "))
		v.lost += len(ids)
	}

	confirmedDB, dupUsers, confirmedIDs, dbErr := s.countOrders(l.item)
	if dbErr != nil {
		v.problem(s, "database check: %v", dbErr)
		confirmedDB = v.confirmed
	}
	v.soldDB = confirmedDB
	v.duplicated = dupUsers + twice
	if dupUsers > 0 {
		v.problem(s, "DUPLICATED: %d users hold two confirmed orders for item %d", dupUsers, l.item)
	}
	if twice > 0 {
		v.problem(s, "DUPLICATED: %d users were accepted under two different order ids", twice)
	}
	if confirmedDB > stock {
		v.oversold = confirmedDB - stock
		v.problem(s, "OVERSOLD: %d confirmed orders for %d units", confirmedDB, stock)
	}
	if v.accepted == 0 {
		v.problem(s, "no purchase was accepted: the scenario tested nothing")
	}
	if allConfirmed && v.failed > 0 {
		v.problem(s, "%d accepted orders failed; this fault must cost no order", v.failed)
	}

	want := int64(stock - confirmedDB)
	if stErr != nil {
		v.problem(s, "admin stats unavailable after the settle wait: %v", stErr)
	} else {
		if st.num("orders_pending") != 0 || st.body["consistent"] != true {
			v.problem(s, "stats not settled after %s: %s", settleWait, st.raw)
		}
		if st.num("stock_total") != int64(stock) || st.num("stock_left_redis") != want || st.num("stock_left_db") != want {
			v.problem(s, "units do not add up: stock_total %d, stock_left_redis %d, stock_left_db %d, want %d total and %d left (= total − %d confirmed)",
				st.num("stock_total"), st.num("stock_left_redis"), st.num("stock_left_db"), stock, want, confirmedDB)
		}
		if st.num("orders_confirmed") != int64(confirmedDB) {
			v.problem(s, "stats say %d confirmed, the database %d", st.num("orders_confirmed"), confirmedDB)
		}
		// A failed order whose unit never came back is lost too: the
		// buyer was told no, and nobody else can buy that unit.
		if missing := want - st.num("stock_left_redis"); missing > 0 && v.failed > 0 {
			v.lost += int(min(missing, int64(v.failed)))
		}
	}
	// Confirmed orders no buyer holds a 202 for: the API accepted them but
	// the answer died with its connection, and the retry was told
	// sold_out (the sold-out flag answers before the repeat check). Each
	// such buyer must be able to find the order they hold: GET
	// /api/v1/items/{id}/orders lists it, or the 202 reached no final state
	// the buyer can see.
	known := make(map[string]bool, len(orders))
	for _, o := range orders {
		known[o.orderID] = true
	}
	tokens := make(map[string]string, len(l.buyers))
	for _, b := range l.buyers {
		tokens[b.user] = b.token
	}
	for id, user := range confirmedIDs {
		if known[id] {
			continue
		}
		v.unacknowledged++
		if err := s.findsOrder(l.item, tokens[user], id); err != nil {
			v.problem(s, "buyer %s never saw the 202 of order %s and cannot find it: %v", user, id, err)
		}
	}
	if v.unacknowledged > 0 {
		s.t.Logf("note: %d confirmed orders belong to buyers who never saw their 202 (answer lost with the connection; the retry said sold_out); each found it with GET /api/v1/items/%d/orders", v.unacknowledged, l.item)
	}
	for _, p := range s.procs {
		if msg := p.unexpectedExit(); msg != "" {
			v.problem(s, "%s", msg)
		}
	}
	for _, p := range s.apis {
		if passes, n := p.sumLogged("outbox relay published pending orders again", "orders"); passes > 0 {
			s.t.Logf("%s: the outbox relay re-published %d orders in %d passes", p.name, n, passes)
		}
		// What the reconciler found and did: the evidence that a fault
		// which loses ledger writes was repaired, not merely survived.
		drift, _ := p.sumLogged("stock ledger and database disagree", "")
		repaired, _ := p.sumLogged("stock ledger repaired from the database", "")
		rebuilt, _ := p.sumLogged("the stock ledger has lost a sale", "")
		trims, trimmed := p.sumLogged("stock ledger showed more stock than the database allows", "units")
		if drift+repaired+rebuilt+trims > 0 {
			s.t.Logf("%s: the reconciler reported drift %d times, repaired %d times, found a lost sale %d times, took %d surplus units away in %d passes",
				p.name, drift, repaired, rebuilt, trimmed, trims)
		}
	}
	for _, p := range s.workers {
		if n, _ := p.sumLogged("reason="+sale.ReasonLedgerRolledBack, ""); n > 0 {
			s.t.Logf("%s: %d orders refused by the database for units the ledger had lost the sales of (dropped, not released)", p.name, n)
		}
	}
	s.t.Logf("load: %s", l.summary())
	s.t.Logf("accepted %d (confirmed %d, failed %d); per API: %s", v.accepted, v.confirmed, v.failed, perAPI(orders, last))
	return v
}

// pollOrders GETs every order not yet final, 32 at a time, with its buyer's
// token, and records what each answer said.
func (s *stack) pollOrders(orders []accepted, last []string, final []bool) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range orders {
		if final[i] {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			api, err := s.pickAPI()
			if err != nil {
				last[i] = "no API running"
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := call(ctx, "GET", api.url+"/api/v1/orders/"+orders[i].orderID, orders[i].token, nil)
			switch {
			case err != nil:
				last[i] = "request error"
			case r.status == 200:
				last[i] = r.str("status")
				final[i] = last[i] == "confirmed" || last[i] == "failed"
			default:
				last[i] = fmt.Sprintf("HTTP %d %s", r.status, r.str("error"))
			}
		}(i)
	}
	wg.Wait()
}

// findsOrder asks, as the buyer with token, for their orders for item and
// reports an error unless the order id is listed confirmed.
func (s *stack) findsOrder(item int64, token, id string) error {
	api, err := s.pickAPI()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := call(ctx, "GET", fmt.Sprintf("%s/api/v1/items/%d/orders", api.url, item), token, nil)
	if err != nil {
		return err
	}
	list, _ := r.body["orders"].([]any)
	for _, o := range list {
		if m, _ := o.(map[string]any); m["order_id"] == id && m["status"] == "confirmed" {
			return nil
		}
	}
	return fmt.Errorf("GET /api/v1/items/%d/orders answered %d %s", item, r.status, r.raw)
}

// countOrders counts the item's confirmed orders and the users holding more
// than one, in the database itself, and returns the confirmed orders' ids
// with their buyers. Statuses may grow, so it counts rows whose status is
// confirmed rather than all rows.
func (s *stack) countOrders(item int64) (confirmed, dupUsers int, ids map[string]string, err error) {
	db, err := sql.Open("mysql", s.mysqlDSN)
	if err != nil {
		return 0, 0, nil, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT order_id, user_id FROM orders WHERE item_id = ? AND status = 'confirmed'", item)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("list confirmed: %w", err)
	}
	defer rows.Close()
	ids = map[string]string{}
	for rows.Next() {
		var id, user string
		if err := rows.Scan(&id, &user); err != nil {
			return 0, 0, nil, fmt.Errorf("list confirmed: %w", err)
		}
		ids[id] = user
	}
	if err := rows.Err(); err != nil {
		return 0, 0, nil, fmt.Errorf("list confirmed: %w", err)
	}
	q := "SELECT COUNT(*) FROM (SELECT user_id FROM orders WHERE item_id = ? AND status = 'confirmed' GROUP BY user_id HAVING COUNT(*) > 1) d"
	if err := db.QueryRowContext(ctx, q, item).Scan(&dupUsers); err != nil {
		return 0, 0, nil, fmt.Errorf("count duplicate users: %w", err)
	}
	return len(ids), dupUsers, ids, nil
}

// perAPI summarises, per answering API, how many orders it accepted and how
// many ended confirmed: a killed API's orders must be delivered by another.
func perAPI(orders []accepted, last []string) string {
	type tally struct{ acc, conf int }
	m := map[string]*tally{}
	for i, o := range orders {
		if m[o.via] == nil {
			m[o.via] = &tally{}
		}
		m[o.via].acc++
		if last[i] == "confirmed" {
			m[o.via].conf++
		}
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s accepted %d, confirmed %d", n, m[n].acc, m[n].conf))
	}
	return strings.Join(parts, "; ")
}
