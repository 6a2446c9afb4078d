package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"seckill/app/config"
)

// TestBrowserBuysPowItem buys a pow item through the sale page at the
// default base difficulty: the page fetches a challenge, solves it in its
// Web Worker (the server accepting the nonce proves the page's SHA-256 is
// the server's), fetches a ticket, buys with it, and sees the order
// confirmed. Then an admin blocks another user on the admin page, and that
// user's Buy is answered "blocked" on the sale page.
func TestBrowserBuysPowItem(t *testing.T) {
	chromium := browserChromiumPath(t)
	base := browserStartSystem(t, func(c *config.Config) { c.SeedDemo = false })
	tab := browserOpen(t, chromium, 1280, 900)
	now := time.Now().UTC().Truncate(time.Second)
	item := browserCreateSale(t, base, browserSaleDraft{
		Name: "Fair drop", Description: "Bots pay in CPU.", Protection: "pow",
		PriceCents: 4900, Stock: 3, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	})
	card := browserCardSel(item)
	tab.do("open the sale page", chromedp.Navigate(base+"/"))
	tab.waitJS("the sale is listed", browserCard(item)+` !== null`)

	t.Run("solve_and_buy", func(t *testing.T) {
		tab := tab.with(t)
		tab.login("honest")
		tab.waitJS("Buy is enabled", browserEnabled(card+" .buy"))
		tab.do("click Buy", chromedp.Click(chromedp.CSS(card+" .buy")))
		tab.waitUntil("the order is confirmed", 20*time.Second, browserTextOf(card+" .order-status")+` === "confirmed"`)
		hashes, ms, updates := tab.dataset(card, "powHashes"), tab.dataset(card, "powMs"), tab.dataset(card, "powUpdates")
		if n, err := strconv.Atoi(hashes); err != nil || n < 1 {
			t.Fatalf("the page reports %q hashes: it did not solve a proof of work", hashes)
		}
		t.Logf("the page solved difficulty %d in %s hashes, %s ms, with %s progress updates", config.Default().PowMinDifficulty, hashes, ms, updates)
		tab.waitJS("Buy says reserved", `/^Reserved/.test(`+browserTextOf(card+" .buy")+`)`)
		tab.waitJS("one unit is taken", `/^2 of 3 left$/.test(`+browserTextOf(card+" .stock-left")+`)`)
	})

	t.Run("blocked_on_admin_page", func(t *testing.T) {
		tab := tab.with(t)
		tab.do("open the admin page", chromedp.Navigate(base+"/admin"))
		tab.do("enter the admin token", chromedp.SendKeys(chromedp.ID("admin-token"), browserAdminToken+"\r"))
		tab.do("block mallory",
			chromedp.SendKeys(chromedp.ID("block-user"), "mallory"),
			chromedp.SendKeys(chromedp.ID("block-reason"), "bot"),
			chromedp.Click(chromedp.ID("block")))
		tab.waitUntil("mallory is listed", 5*time.Second, `document.querySelector('#blocklist [data-user-id="mallory"]') !== null`)
		tab.do("open the sale page", chromedp.Navigate(base+"/"))
		tab.waitJS("the sale is listed", browserCard(item)+` !== null`)
		tab.do("log out", chromedp.Click(chromedp.ID("logout")))
		tab.login("mallory")
		tab.waitJS("Buy is enabled", browserEnabled(card+" .buy"))
		tab.do("click Buy", chromedp.Click(chromedp.CSS(card+" .buy")))
		tab.waitUntil("the page says blocked", 10*time.Second, `/blocked/i.test(`+browserTextOf(card+" .message")+`)`)
		tab.do("back to the admin page", chromedp.Navigate(base+"/admin"))
		tab.waitUntil("mallory is listed", 5*time.Second, `document.querySelector('#blocklist [data-user-id="mallory"] .unblock') !== null`)
		tab.do("unblock mallory", chromedp.Click(chromedp.CSS(`#blocklist [data-user-id="mallory"] .unblock`)))
		tab.waitUntil("the blocklist is empty", 5*time.Second, `document.querySelector('#blocklist [data-user-id="mallory"]') === null`)
	})
	tab.checkPageErrors()
}

// dataset reads one data- attribute of the element sel ("" if unset).
func (b *browserTab) dataset(sel, key string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('`+sel+`').dataset.`+key+` || ""`))
	if err != nil {
		b.t.Fatalf("read data-%s of %s: %v", key, sel, err)
	}
	return v
}
