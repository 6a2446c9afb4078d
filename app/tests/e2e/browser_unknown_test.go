package e2e

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// lostReplyJS makes the page's purchases lose their answer the way a 504
// outcome_unknown does: the request reaches the shop (the order is placed),
// and the page is answered 504 outcome_unknown naming it, as when Redis
// applied the reservation and its reply was lost.
const lostReplyJS = `(() => {
  const real = window.fetch;
  window.fetch = async (path, init) => {
    const res = await real(path, init);
    if (!/\/purchase$/.test(String(path))) return res;
    const body = await res.json();
    const item = String(path).split("/")[4];
    return new Response(JSON.stringify({error: "outcome_unknown", message: "no answer",
      order_id: body.order_id || "", orders_url: "/api/v1/items/" + item + "/orders"}),
      {status: 504, headers: {"Content-Type": "application/json"}});
  };
})()`

// rolledBackJS answers the page's purchase 504 outcome_unknown and its
// orders lookup with that order failed with reason ledger_rolled_back, as
// after a ledger rollback (the reservation was lost with the writes).
const rolledBackJS = `(() => {
  const real = window.fetch;
  const id = "1-00000000000000000000000000ab";
  const json = (status, v) => new Response(JSON.stringify(v), {status, headers: {"Content-Type": "application/json"}});
  window.fetch = async (path, init) => {
    const p = String(path);
    if (/\/purchase$/.test(p)) return json(504, {error: "outcome_unknown", message: "no answer", order_id: id, orders_url: p.replace(/purchase$/, "orders")});
    if (/\/orders$/.test(p)) return json(200, {orders: [{order_id: id, item_id: 1, user_id: "rolled", price_cents: 500,
      status: "failed", reason: "ledger_rolled_back", created_at: new Date().toISOString(), pay_by: null, paid_at: null}]});
    return real(path, init);
  };
})()`

// TestBrowserFollowsOutcomeUnknown: a purchase answered 504
// outcome_unknown is not shown as a failure or a "try again": the page
// asks the orders route, as the answer says, and shows the truth. Here
// the order exists, so the buyer sees it confirmed with Pay now; in the
// second case the order failed in a ledger rollback, and the page shows
// its reason.
func TestBrowserFollowsOutcomeUnknown(t *testing.T) {
	chromium := browserChromiumPath(t)
	base := browserStartSystem(t)
	now := time.Now().UTC().Truncate(time.Second)
	item := browserCreateSale(t, base, browserSaleDraft{
		Name: "Unknown answers", Description: "Two units.", PriceCents: 500, Stock: 2,
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	})
	card := browserCardSel(item)

	t.Run("found", func(t *testing.T) {
		tab := browserOpen(t, chromium, 1280, 900)
		tab.do("open the sale page", chromedp.Navigate(base+"/"))
		tab.waitJS("the sale is listed", browserCard(item)+` !== null`)
		tab.login("unknown-found")
		tab.do("lose the purchase's answer", chromedp.Evaluate[chromedp.Void](lostReplyJS))
		tab.waitJS("Buy can be pressed", browserEnabled(card+" .buy"))
		tab.do("click Buy", chromedp.Click(chromedp.CSS(card+" .buy")))
		tab.waitUntil("the order is shown confirmed", 15*time.Second, browserTextOf(card+" .order-status")+` === "confirmed"`)
		// Which words depends on whether the worker confirmed the order
		// before or after the page found it; both say the buyer holds it.
		tab.waitJS("the page says the buyer holds it", `/already hold an order|Confirmed!/i.test(`+browserTextOf(card+" .message")+`)`)
		tab.waitJS("Pay now is offered", browserVisible(card+" .order-actions")+` && `+browserEnabled(card+" .pay"))
		tab.checkPageErrors()
	})

	t.Run("failed", func(t *testing.T) {
		tab := browserOpen(t, chromium, 1280, 900)
		tab.do("open the sale page", chromedp.Navigate(base+"/"))
		tab.waitJS("the sale is listed", browserCard(item)+` !== null`)
		tab.login("unknown-failed")
		tab.do("answer 504 and a rolled-back order", chromedp.Evaluate[chromedp.Void](rolledBackJS))
		tab.waitJS("Buy can be pressed", browserEnabled(card+" .buy"))
		tab.do("click Buy", chromedp.Click(chromedp.CSS(card+" .buy")))
		tab.waitUntil("the order is shown failed", 15*time.Second, browserTextOf(card+" .order-status")+` === "failed"`)
		tab.waitJS("the order's reason is shown", browserVisible(card+" .order-reason")+
			` && /stock records lost your reservation/.test(`+browserTextOf(card+" .order-reason")+`)`)
		tab.checkPageErrors()
	})
}
