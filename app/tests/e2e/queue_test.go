package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"seckill/app/bootstrap"
)

// createQueued makes a queue item opening at opens, for an hour.
func (in *instance) createQueued(name string, stock int, rate int, opens time.Time) int64 {
	in.t.Helper()
	r := in.do("POST", "/api/v1/admin/items", adminToken, map[string]any{
		"name": name, "price_cents": 1999, "stock": stock, "protection": "queue", "admit_per_second": rate,
		"starts_at": opens.UTC().Format(time.RFC3339Nano), "ends_at": opens.Add(time.Hour).UTC().Format(time.RFC3339Nano),
	})
	if r.Status != 201 || r.str("protection") != "queue" || r.num("admit_per_second") != int64(rate) {
		in.t.Fatalf("create queue item: %d %s", r.Status, r.Raw)
	}
	return r.num("id")
}

// buyer is one user of a queue test: name, token, and the last status.
type buyer struct {
	name, token string
	last        response
}

func (in *instance) queuePath(item int64) string { return fmt.Sprintf("/api/v1/items/%d/queue", item) }

// pollAll polls every buyer once, in parallel, and returns how many are in
// each state.
func (in *instance) pollAll(item int64, bs []*buyer) map[string]int {
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Go(func() { b.last = in.do("GET", in.queuePath(item), b.token, nil) })
	}
	wg.Wait()
	n := map[string]int{}
	for _, b := range bs {
		n[b.last.str("state")]++
	}
	return n
}

func (in *instance) buyers(prefix string, n int) []*buyer {
	out := make([]*buyer, n)
	for i := range out {
		name := fmt.Sprintf("%s%02d", prefix, i)
		out[i] = &buyer{name: name, token: in.login(name)}
	}
	return out
}

// TestQueueAcceptance is the waiting room from outside: 15 buyers join
// before the opening and 20 after, for 20 units. Every early joiner is
// admitted before any late one, the late ones in join order; a purchase
// without an admission is 403 not_admitted and a used admission is
// refused; after the sell-out every waiting buyer sees sold_out within 2 s;
// and ten cancellations admit exactly the next ten in line (the waitlist),
// whom nobody else can overtake.
func TestQueueAcceptance(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "q1", bootstrap.Roles{API: true, Worker: true}, fairConfig)
	opens := time.Now().Add(3 * time.Second)
	item := in.createQueued("queued", 20, 200, opens)
	path := in.queuePath(item)

	early, late := in.buyers("early", 15), in.buyers("late", 20)
	for _, e := range early {
		r := in.do("POST", path, e.token, nil)
		if r.Status != 202 || r.str("state") != "waiting" || r.num("position") < 1 {
			t.Fatalf("early join: %d %s", r.Status, r.Raw)
		}
	}
	if r := in.do("POST", path, early[0].token, nil); r.Status != 202 || r.str("state") != "waiting" {
		t.Fatalf("a second join: %d %s", r.Status, r.Raw)
	}
	waitUntil(t, 10*time.Second, "the opening", func() bool { return time.Now().After(opens.Add(50 * time.Millisecond)) })
	for i, l := range late {
		r := in.do("POST", path, l.token, nil)
		if r.Status != 202 || r.str("state") != "waiting" {
			t.Fatalf("late join %d: %d %s", i, r.Status, r.Raw)
		}
	}
	all := append(append([]*buyer{}, early...), late...)

	// 20 units: the 15 early joiners and the first 5 late ones, exactly.
	waitUntil(t, 10*time.Second, "20 admissions", func() bool { return in.pollAll(item, all)["admitted"] == 20 })
	for _, e := range early {
		if e.last.str("state") != "admitted" {
			t.Fatalf("early joiner %s not admitted: %s", e.name, e.last.Raw)
		}
	}
	for i, l := range late {
		if admitted := l.last.str("state") == "admitted"; admitted != (i < 5) {
			t.Fatalf("late joiner %d: %s; want the first 5 late joiners admitted, in join order", i, l.last.Raw)
		}
	}
	if pos := late[5].last.num("position"); pos != 1 || late[6].last.num("position") != 2 {
		t.Fatalf("late joiners 5 and 6 at positions %d and %d, want 1 and 2", pos, late[6].last.num("position"))
	}

	buy := func(b *buyer, ticket string) response {
		return in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), b.token, map[string]string{"ticket": ticket})
	}
	wantError(t, "a purchase without an admission", in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), late[9].token, nil), 403, "not_admitted")
	wantError(t, "a purchase with another buyer's admission", buy(late[9], early[0].last.str("ticket")), 403, "not_admitted")

	orders := map[*buyer]string{}
	for _, a := range append(append([]*buyer{}, early...), late[:5]...) {
		r := buy(a, a.last.str("ticket"))
		if r.Status != 202 {
			t.Fatalf("admitted %s buys: %d %s", a.name, r.Status, r.Raw)
		}
		orders[a] = r.str("order_id")
	}
	// Used twice by its holder, who holds the order it bought: refused, and
	// told which order they hold (a buyer whose 202 was lost learns it).
	if r := buy(early[0], early[0].last.str("ticket")); r.Status != 409 || r.str("order_id") != orders[early[0]] {
		t.Fatalf("an admission used twice: %d %s, want 409 already_purchased naming %s", r.Status, r.Raw, orders[early[0]])
	}

	// Sold out: everyone still waiting sees it within 2 s.
	soldAt := time.Now()
	waiting := late[5:]
	waitUntil(t, 2*time.Second, "sold_out for every waiting buyer", func() bool { return in.pollAll(item, waiting)["sold_out"] == len(waiting) })
	t.Logf("sold_out seen by all %d waiting buyers %s after the last purchase", len(waiting), time.Since(soldAt).Round(time.Millisecond))

	// Ten cancellations: exactly the next ten in line are admitted.
	for _, a := range early[:10] {
		in.waitOrder(orders[a], a.token, "confirmed", 15*time.Second)
		if r := in.do("POST", "/api/v1/orders/"+orders[a]+"/cancel", a.token, nil); r.Status != 200 {
			t.Fatalf("cancel %s: %d %s", orders[a], r.Status, r.Raw)
		}
	}
	waitUntil(t, 10*time.Second, "ten admissions from the waitlist", func() bool { return in.pollAll(item, waiting)["admitted"] == 10 })
	for i, w := range waiting {
		if admitted := w.last.str("state") == "admitted"; admitted != (i < 10) {
			t.Fatalf("waitlist: late joiner %d is %s; want exactly the next ten admitted", i+5, w.last.Raw)
		}
	}
	outsider := in.buyers("outsider", 1)[0]
	wantError(t, "a returned unit bought by someone not in line", in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), outsider.token, nil), 403, "not_admitted")
	wantError(t, "a poll by someone not in line", in.do("GET", path, outsider.token, nil), 404, "not_in_line")
	for _, w := range waiting[:10] {
		if r := buy(w, w.last.str("ticket")); r.Status != 202 {
			t.Fatalf("waitlisted %s buys: %d %s", w.name, r.Status, r.Raw)
		}
	}
	waitUntil(t, 2*time.Second, "sold_out again for the rest", func() bool { return in.pollAll(item, waiting[10:])["sold_out"] == 5 })
	s := in.waitSettled(item, 20*time.Second)
	if s.num("orders_confirmed") > 20 {
		t.Fatalf("oversold: %s", s.Raw)
	}
}

// TestQueueRefusals: a blocked user cannot join; an item without a waiting
// room has no line; a line survives the instance that served it.
func TestQueueRefusals(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "q1", bootstrap.Roles{API: true, Worker: true}, fairConfig)
	item := in.createQueued("queued", 5, 100, time.Now().Add(-time.Second))
	plain := in.createSale("plain", 5, 0)
	tok := in.login("alice")
	if r := in.do("POST", "/api/v1/admin/blocklist/mallory", adminToken, nil); r.Status != 201 {
		t.Fatalf("block: %d %s", r.Status, r.Raw)
	}
	wantError(t, "a blocked user joins", in.do("POST", in.queuePath(item), in.login("mallory"), nil), 403, "blocked")
	wantError(t, "a join of an item without a line", in.do("POST", in.queuePath(plain), tok, nil), 400, "invalid_request")
	if r := in.do("POST", in.queuePath(item), tok, nil); r.Status != 202 {
		t.Fatalf("join: %d %s", r.Status, r.Raw)
	}
	// A second instance knows nothing of alice locally: her place is in Redis.
	in2 := b.start(t, "q2", bootstrap.Roles{API: true}, fairConfig)
	waitUntil(t, 5*time.Second, "alice admitted on the other instance", func() bool {
		return in2.do("GET", in2.queuePath(item), tok, nil).str("state") == "admitted"
	})
}
