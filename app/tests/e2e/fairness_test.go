package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"seckill/app/config"
	"seckill/app/fairness"
	"seckill/domain/sale"
)

// fairConfig makes proofs of work cheap enough for tests under -race and
// lifts the per-user limit, which is not what these tests are about.
func fairConfig(c *config.Config) {
	c.PowMinDifficulty, c.PowMaxDifficulty = 8, 12
	c.UserRate, c.UserBurst = 1000, 1000
}

// createProtected makes an item open from now for an hour with protection.
func (in *instance) createProtected(name string, stock int, protection string) int64 {
	in.t.Helper()
	now := time.Now().UTC()
	r := in.do("POST", "/api/v1/admin/items", adminToken, map[string]any{
		"name": name, "price_cents": 1999, "stock": stock, "protection": protection,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339Nano), "ends_at": now.Add(time.Hour).Format(time.RFC3339Nano),
	})
	if r.Status != 201 || r.str("protection") != protection {
		in.t.Fatalf("create %s item: %d %s", protection, r.Status, r.Raw)
	}
	return r.num("id")
}

// powTicket solves the item's challenge for token like a client does and
// returns the ticket.
func (in *instance) powTicket(item int64, token string) string {
	in.t.Helper()
	ch := in.do("GET", fmt.Sprintf("/api/v1/items/%d/challenge", item), token, nil)
	if ch.Status != 200 || ch.str("challenge") == "" || ch.num("difficulty") < 1 || ch.str("expires_at") == "" {
		in.t.Fatalf("challenge: %d %s", ch.Status, ch.Raw)
	}
	nonce := fairness.Solve(ch.str("challenge"), int(ch.num("difficulty")))
	tk := in.do("POST", fmt.Sprintf("/api/v1/items/%d/ticket", item), token, map[string]string{"challenge": ch.str("challenge"), "nonce": nonce})
	if tk.Status != 200 || tk.str("ticket") == "" {
		in.t.Fatalf("pow ticket: %d %s", tk.Status, tk.Raw)
	}
	return tk.str("ticket")
}

func (in *instance) ticketFor(item int64, token string) string {
	in.t.Helper()
	r := in.do("POST", fmt.Sprintf("/api/v1/items/%d/ticket", item), token, nil)
	if r.Status != 200 || r.str("ticket") == "" || r.str("expires_at") == "" {
		in.t.Fatalf("ticket: %d %s", r.Status, r.Raw)
	}
	exp, err := time.Parse(time.RFC3339Nano, r.str("expires_at"))
	if err != nil || time.Until(exp) > fairness.MaxTicketTTL || time.Until(exp) <= 0 {
		in.t.Fatalf("ticket expires_at %q: want within %s", r.str("expires_at"), fairness.MaxTicketTTL)
	}
	return r.str("ticket")
}

func wantError(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.Status != status || r.str("error") != code {
		t.Errorf("%s: %d %s, want %d %s", what, r.Status, r.Raw, status, code)
	}
}

// TestTicketAcceptance is the issue's acceptance from outside, for an item
// created with "protection":"ticket": no ticket is 403 ticket_required, a
// fresh ticket is 202, the same ticket replayed by another user is 403
// invalid_ticket, and by its owner 409 already_purchased naming the order. Every other refusal of the ticket
// path is here too.
func TestTicketAcceptance(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, fairConfig)
	item := in.createProtected("ticketed", 10, "ticket")
	other := in.createProtected("ticketed too", 10, "ticket")
	plain := in.createSale("plain", 10, 0)
	buy := fmt.Sprintf("/api/v1/items/%d/purchase", item)
	alice, bob, carol := in.login("alice"), in.login("bob"), in.login("carol")

	if r := in.do("GET", fmt.Sprintf("/api/v1/items/%d", plain), "", nil); r.str("protection") != "none" {
		t.Errorf("an API-created item without protection: %s, want protection none", r.Raw)
	}
	wantError(t, "no ticket", in.do("POST", buy, alice, nil), 403, "ticket_required")
	wantError(t, "empty ticket", in.do("POST", buy, alice, map[string]string{"ticket": ""}), 403, "ticket_required")
	wantError(t, "unknown body field", in.do("POST", buy, alice, map[string]string{"tikcet": "x"}), 400, "invalid_request")
	tk := in.ticketFor(item, alice)
	wantError(t, "alice's ticket by bob", in.do("POST", buy, bob, map[string]string{"ticket": tk}), 403, "invalid_ticket")
	wantError(t, "for another item", in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", other), alice, map[string]string{"ticket": tk}), 403, "invalid_ticket")
	wantError(t, "forged", in.do("POST", buy, alice, map[string]string{"ticket": tk[:len(tk)-2] + "xx"}), 403, "invalid_ticket")
	wantError(t, "ticket for a plain item", in.do("POST", fmt.Sprintf("/api/v1/items/%d/ticket", plain), alice, nil), 400, "invalid_request")
	wantError(t, "challenge for a ticket item", in.do("GET", fmt.Sprintf("/api/v1/items/%d/challenge", item), alice, nil), 400, "invalid_request")
	wantError(t, "ticket without a token", in.do("POST", fmt.Sprintf("/api/v1/items/%d/ticket", item), "", nil), 401, "unauthorized")
	if st := in.stats(item); st.num("stock_left_redis") != 10 {
		t.Fatalf("refused purchases moved the stock: %s", st.Raw)
	}

	r := in.do("POST", buy, alice, map[string]string{"ticket": tk})
	if r.Status != 202 {
		t.Fatalf("fresh ticket: %d %s, want 202", r.Status, r.Raw)
	}
	wantError(t, "the same ticket by another user", in.do("POST", buy, carol, map[string]string{"ticket": tk}), 403, "invalid_ticket")
	// Its owner holds the order the ticket bought: a replay is told so,
	// naming it (a buyer whose 202 was lost learns the truth).
	if again := in.do("POST", buy, alice, map[string]string{"ticket": tk}); again.Status != 409 || again.str("error") != "already_purchased" || again.str("order_id") != r.str("order_id") {
		t.Errorf("the same ticket again by its owner: %d %s, want 409 already_purchased naming %s", again.Status, again.Raw, r.str("order_id"))
	}
	// An expired ticket: minted by a service with the same secret whose
	// clock is two minutes behind.
	old := fairness.New(fairness.Deps{Items: in.Store()}, fairness.Options{
		Secret: b.cfg.TokenSecret, TicketLead: time.Hour, Now: func() time.Time { return time.Now().Add(-2 * time.Minute) },
	})
	stale, err := old.IssueTicket(t.Context(), "bob", fairnessItem(item), "", "")
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, "expired", in.do("POST", buy, bob, map[string]string{"ticket": stale.Ticket}), 403, "invalid_ticket")

	// PATCH the protection: to none, a purchase needs no ticket; a bogus
	// value is refused.
	wantError(t, "bogus protection", in.do("PATCH", fmt.Sprintf("/api/v1/admin/items/%d", item), adminToken, map[string]string{"protection": "captcha"}), 400, "invalid_request")
	wantError(t, "create with bogus protection", in.do("POST", "/api/v1/admin/items", adminToken, map[string]any{
		"name": "x", "price_cents": 1, "stock": 1, "protection": "maybe",
		"starts_at": time.Now().Format(time.RFC3339), "ends_at": time.Now().Add(time.Hour).Format(time.RFC3339),
	}), 400, "invalid_request")
	if p := in.do("PATCH", fmt.Sprintf("/api/v1/admin/items/%d", item), adminToken, map[string]string{"protection": "none"}); p.Status != 200 || p.str("protection") != "none" {
		t.Fatalf("patch to none: %d %s", p.Status, p.Raw)
	}
	if r := in.do("POST", buy, bob, nil); r.Status != 202 {
		t.Fatalf("after PATCH to none, a purchase without a ticket: %d %s", r.Status, r.Raw)
	}
	st := in.waitSettled(item, 20*time.Second)
	if st.num("orders_confirmed")+st.num("orders_paid") != 2 {
		t.Fatalf("want exactly 2 units sold: %s", st.Raw)
	}
	metrics := scrape(t, in)
	for _, want := range []string{
		`seckill_purchases_total{outcome="ticket_required"}`, `seckill_purchases_total{outcome="invalid_ticket"}`,
		`seckill_fairness_total{outcome="issued",step="ticket"}`, `seckill_fairness_total{outcome="invalid_request",step="challenge"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

// TestPowPath buys a pow item the way a client does, and checks each
// refusal of the proof-of-work step.
func TestPowPath(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, fairConfig)
	item := in.createProtected("pow", 10, "pow")
	alice, bob := in.login("alice"), in.login("bob")
	chPath, tkPath := fmt.Sprintf("/api/v1/items/%d/challenge", item), fmt.Sprintf("/api/v1/items/%d/ticket", item)

	ch := in.do("GET", chPath, alice, nil)
	if ch.Status != 200 || ch.num("difficulty") != 8 {
		t.Fatalf("challenge at rest: %d %s, want difficulty 8 (the configured minimum)", ch.Status, ch.Raw)
	}
	c := ch.str("challenge")
	nonce := fairness.Solve(c, 8)
	unsolved := "0"
	for fairness.LeadingZeroBits(c, unsolved) >= 8 {
		unsolved += "7"
	}
	wantError(t, "ticket without a challenge", in.do("POST", tkPath, alice, nil), 400, "invalid_request")
	wantError(t, "non-decimal nonce", in.do("POST", tkPath, alice, map[string]string{"challenge": c, "nonce": "abc"}), 400, "invalid_request")
	wantError(t, "unsolved", in.do("POST", tkPath, alice, map[string]string{"challenge": c, "nonce": unsolved}), 403, "invalid_challenge")
	wantError(t, "alice's challenge by bob", in.do("POST", tkPath, bob, map[string]string{"challenge": c, "nonce": nonce}), 403, "invalid_challenge")
	tk := in.do("POST", tkPath, alice, map[string]string{"challenge": c, "nonce": nonce})
	if tk.Status != 200 {
		t.Fatalf("solved: %d %s", tk.Status, tk.Raw)
	}
	wantError(t, "challenge used twice", in.do("POST", tkPath, alice, map[string]string{"challenge": c, "nonce": nonce}), 403, "invalid_challenge")
	wantError(t, "pow purchase without ticket", in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), bob, nil), 403, "ticket_required")
	if r := in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), alice, map[string]string{"ticket": tk.str("ticket")}); r.Status != 202 {
		t.Fatalf("pow purchase: %d %s", r.Status, r.Raw)
	}
	if r := in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), bob, map[string]string{"ticket": in.powTicket(item, bob)}); r.Status != 202 {
		t.Fatalf("second pow purchase: %d %s", r.Status, r.Raw)
	}
	if m := scrape(t, in); !strings.Contains(m, `seckill_fairness_total{outcome="invalid_challenge",step="ticket"} 3`) {
		t.Errorf("/metrics does not count the three invalid_challenge answers (unsolved, someone else's, used twice)")
	}
}

// TestTicketReplayRaceHTTP sends one ticket from 100 connections at once:
// at most one purchase wins, the rest are refused, and exactly
// one unit leaves the stock.
func TestTicketReplayRaceHTTP(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, fairConfig)
	item := in.createProtected("replayed", 50, "ticket")
	alice := in.login("alice")
	tk := in.ticketFor(item, alice)
	body := `{"ticket":"` + tk + `"}`
	const n = 100
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[string]int{}
	)
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/api/v1/items/%d/purchase", in.url, item), strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+alice)
			req.Header.Set("Content-Type", "application/json")
			<-start
			res, err := client.Do(req)
			var key string
			if err != nil {
				key = "error: " + err.Error()
			} else {
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				key = fmt.Sprintf("%d %s", res.StatusCode, errorCodeOf(raw))
			}
			mu.Lock()
			codes[key]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	// A replay is refused as a spent ticket, or, once the winner's order
	// is in the ledger, as already purchased (its user holds it).
	if codes["202 "] != 1 || codes["403 invalid_ticket"]+codes["409 already_purchased"] != n-1 {
		t.Fatalf("100 replays of one ticket: %v, want one 202 and %d refusals (403 invalid_ticket or 409 already_purchased)", codes, n-1)
	}
	st := in.waitSettled(item, 20*time.Second)
	if st.num("stock_left_redis") != 49 || st.num("orders_confirmed") != 1 {
		t.Fatalf("want exactly one unit sold: %s", st.Raw)
	}
}

// TestBlocklistBroadcast blocks a user on one instance and sees the other
// refuse them with 403 blocked without asking anyone; the admin API lists
// and edits the blocklist, and the unblock reaches the other instance too.
func TestBlocklistBroadcast(t *testing.T) {
	b := newBackends(t)
	a1 := b.start(t, "api-1", both, fairConfig)
	a2 := b.start(t, "api-2", both, fairConfig)
	item := a1.createSale("open", 10, 0)
	pow := a1.createProtected("pow", 10, "pow")
	tok := a2.login("mallory")
	buy := fmt.Sprintf("/api/v1/items/%d/purchase", item)

	wantError(t, "bad user id", a1.do("POST", "/api/v1/admin/blocklist/not%20valid", adminToken, nil), 400, "invalid_request")
	wantError(t, "without the admin token", a1.do("POST", "/api/v1/admin/blocklist/mallory", tok, nil), 401, "unauthorized")
	if r := a1.do("POST", "/api/v1/admin/blocklist/mallory", adminToken, map[string]string{"reason": "scalper"}); r.Status != 201 || r.Body["added"] != true {
		t.Fatalf("block: %d %s", r.Status, r.Raw)
	}
	if r := a1.do("POST", "/api/v1/admin/blocklist/mallory", adminToken, nil); r.Status != 200 || r.Body["added"] != false {
		t.Fatalf("block again: %d %s", r.Status, r.Raw)
	}
	waitUntil(t, 5*time.Second, "api-2 hears of the block", func() bool { return a2.Fair.Blocked("mallory") })
	wantError(t, "blocked purchase on the other instance", a2.do("POST", buy, tok, nil), 403, "blocked")
	wantError(t, "blocked challenge", a2.do("GET", fmt.Sprintf("/api/v1/items/%d/challenge", pow), tok, nil), 403, "blocked")
	wantError(t, "blocked ticket", a2.do("POST", fmt.Sprintf("/api/v1/items/%d/ticket", pow), tok, nil), 403, "blocked")
	list := a2.do("GET", "/api/v1/admin/blocklist", adminToken, nil)
	if list.Status != 200 || !strings.Contains(string(list.Raw), `"user_id":"mallory","reason":"scalper"`) {
		t.Fatalf("blocklist: %d %s", list.Status, list.Raw)
	}
	if st := a1.stats(item); st.num("stock_left_redis") != 10 {
		t.Fatalf("a blocked purchase moved the stock: %s", st.Raw)
	}
	if r := a2.do("DELETE", "/api/v1/admin/blocklist/mallory", adminToken, nil); r.Status != 200 || r.Body["removed"] != true {
		t.Fatalf("unblock: %d %s", r.Status, r.Raw)
	}
	waitUntil(t, 5*time.Second, "api-1 hears of the unblock", func() bool { return !a1.Fair.Blocked("mallory") })
	if r := a1.do("POST", buy, tok, nil); r.Status != 202 {
		t.Fatalf("after unblock: %d %s", r.Status, r.Raw)
	}
	if m := scrape(t, a2); !strings.Contains(m, `seckill_purchases_total{outcome="blocked"} 1`) || !strings.Contains(m, `seckill_fairness_total{outcome="blocked",step="challenge"} 1`) {
		t.Error("/metrics does not count the blocked refusals")
	}
	// A restarted instance loads the durable list at start.
	a1.do("POST", "/api/v1/admin/blocklist/eve", adminToken, nil)
	a3 := b.start(t, "api-3", both, fairConfig)
	if !a3.Fair.Blocked("eve") || a3.Fair.Blocked("mallory") {
		t.Fatal("a new instance did not load the blocklist from the database")
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func scrape(t *testing.T, in *instance) string {
	t.Helper()
	res, err := client.Get(in.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return string(raw)
}

func fairnessItem(id int64) sale.ItemID { return sale.ItemID(id) }

// errorCodeOf is the "error" field of a JSON error body, or "".
func errorCodeOf(raw []byte) string {
	var b struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(raw, &b)
	return b.Error
}
