package e2e

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"seckill/app/config"
)

// TestBrowserOrderLifecycle drives the sale page through both ends of a
// confirmed order with a short payment window: buy, see the countdown,
// pay, and see paid; then, as another user, buy, let the window pass, see
// expired, and see the unit back on the page.
func TestBrowserOrderLifecycle(t *testing.T) {
	chromium := browserChromiumPath(t)
	const window = 6 * time.Second
	base := browserStartSystem(t, func(c *config.Config) { c.PaymentWindow = window })
	tab := browserOpen(t, chromium, 1280, 900)
	now := time.Now().UTC().Truncate(time.Second)
	item := browserCreateSale(t, base, browserSaleDraft{
		Name: "Two-pair drop", Description: "Pay within seconds.",
		PriceCents: 9900, Stock: 2, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	})
	card := browserCardSel(item)
	tab.do("open the sale page", chromedp.Navigate(base+"/"))
	tab.waitJS("the sale is listed", browserCard(item)+` !== null`)

	t.Run("buy_pay_paid", func(t *testing.T) {
		tab := tab.with(t)
		tab.login("payer")
		tab.waitJS("Buy is enabled", browserEnabled(card+" .buy"))
		tab.do("click Buy", chromedp.Click(chromedp.CSS(card+" .buy")))
		tab.waitUntil("the order is confirmed", 10*time.Second, browserTextOf(card+" .order-status")+` === "confirmed"`)
		tab.waitJS("Pay now and Cancel are shown", browserVisible(card+" .order-actions")+` && `+browserEnabled(card+" .pay"))
		tab.waitJS("a countdown to pay_by is shown", `/^Pay within 00:0[1-6]$/.test(`+browserTextOf(card+" .order-deadline")+`)`)
		tab.do("click Pay now", chromedp.Click(chromedp.CSS(card+" .pay")))
		tab.waitUntil("the order is paid", 5*time.Second, browserTextOf(card+" .order-status")+` === "paid"`)
		tab.waitJS("the page says it is paid", `/paid/i.test(`+browserTextOf(card+" .message")+`)`)
		tab.waitJS("the buttons are gone", browserHidden(card+" .order-actions")+` && `+browserHidden(card+" .order-deadline"))
		tab.waitJS("Buy says purchased", browserTextOf(card+" .buy")+` === "Purchased"`)
		tab.waitJS("one unit is left", `/^1 of 2 left$/.test(`+browserTextOf(card+" .stock-left")+`)`)
	})

	t.Run("buy_let_pass_expired", func(t *testing.T) {
		tab := tab.with(t)
		tab.do("log out", chromedp.Click(chromedp.ID("logout")))
		tab.login("lapser")
		tab.waitJS("Buy is enabled", browserEnabled(card+" .buy"))
		tab.do("click Buy", chromedp.Click(chromedp.CSS(card+" .buy")))
		tab.waitUntil("the order is confirmed", 10*time.Second, browserTextOf(card+" .order-status")+` === "confirmed"`)
		tab.waitUntil("the last unit shows as taken", 5*time.Second, `/^0 of 2 left$/.test(`+browserTextOf(card+" .stock-left")+`)`)
		tab.waitUntil("the order expires", window+5*time.Second, browserTextOf(card+" .order-status")+` === "expired"`)
		tab.waitJS("the page says it expired", `/expired/i.test(`+browserTextOf(card+" .message")+`)`)
		tab.waitJS("Pay now is gone", browserHidden(card+" .order-actions"))
		tab.waitUntil("the unit is back on the page", 5*time.Second, `/^1 of 2 left$/.test(`+browserTextOf(card+" .stock-left")+`)`)
		tab.waitJS("the lapsed buyer cannot buy again", browserTextOf(card+" .buy")+` === "Order expired"`)
	})
	t.Run("admin_counts", func(t *testing.T) {
		tab := tab.with(t)
		tab.do("open the admin page", chromedp.Navigate(base+"/admin"))
		tab.do("enter the admin token", chromedp.SendKeys(chromedp.ID("admin-token"), browserAdminToken+"\r"))
		tab.waitUntil("stats show one paid, one expired and consistent books", 10*time.Second,
			browserTextOf(card+" .s-paid")+` === "1" && `+browserTextOf(card+" .s-expired")+` === "1" && `+
				browserTextOf(card+" .s-cancelled")+` === "0" && `+browserTextOf(card+" .s-confirmed")+` === "0" && `+
				`document.querySelector('`+card+` .consistency').dataset.state === "consistent"`)
	})
	tab.checkPageErrors()
}
