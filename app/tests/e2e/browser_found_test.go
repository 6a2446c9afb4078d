package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"seckill/app/config"
)

// TestBrowserFindsALostOrder: a buyer's order was accepted but the answer
// never reached their browser (here it was placed through the API, so the
// page has no record of it). The sale then sold out, and another buyer's
// attempt raised the sold-out flag. When the buyer presses Buy on the sold-
// out card the purchase answers sold_out, and the page asks
// GET /api/v1/items/{id}/orders and shows the order they hold, with Pay.
func TestBrowserFindsALostOrder(t *testing.T) {
	chromium := browserChromiumPath(t)
	// The flag must outlast the page load: with the default 2 s TTL the
	// buyer's click would reach the ledger and hear already_purchased.
	base := browserStartSystem(t, func(c *config.Config) { c.SoldOutTTL = time.Minute })
	now := time.Now().UTC().Truncate(time.Second)
	item := browserCreateSale(t, base, browserSaleDraft{
		Name: "Last one", Description: "One unit.", PriceCents: 500, Stock: 1,
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	})
	buyAPI := func(user string) (int, string) {
		t.Helper()
		post := func(path, token string) (int, map[string]any) {
			req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := browserHTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var body map[string]any
			_ = json.Unmarshal(raw, &body)
			return resp.StatusCode, body
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/login", strings.NewReader(`{"user_id":"`+user+`"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := browserHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var login struct{ Token string }
		_ = json.NewDecoder(resp.Body).Decode(&login)
		_ = resp.Body.Close()
		status, body := post(fmt.Sprintf("/api/v1/items/%d/purchase", item), login.Token)
		code, _ := body["error"].(string)
		if id, ok := body["order_id"].(string); ok {
			return status, id
		}
		return status, code
	}
	status, orderID := buyAPI("lost")
	if status != 202 {
		t.Fatalf("the lost buyer's purchase: %d %s", status, orderID)
	}
	if status, code := buyAPI("latecomer"); status != 409 || code != "sold_out" {
		t.Fatalf("the latecomer's purchase: %d %s, want 409 sold_out (raises the flag)", status, code)
	}

	card := browserCardSel(item)
	tab := browserOpen(t, chromium, 1280, 900)
	tab.do("open the sale page", chromedp.Navigate(base+"/"))
	tab.waitJS("the sale is listed", browserCard(item)+` !== null`)
	tab.login("lost")
	tab.waitJS("Buy can still be pressed on the sold-out card", browserEnabled(card+" .buy"))
	tab.do("click Buy", chromedp.Click(chromedp.CSS(card+" .buy")))
	tab.waitUntil("the order is shown confirmed", 10*time.Second, browserTextOf(card+" .order-status")+` === "confirmed"`)
	tab.waitJS("the page says the buyer holds it", `/already hold an order/i.test(`+browserTextOf(card+" .message")+`)`)
	tab.waitJS("Pay now is offered", browserVisible(card+" .order-actions")+` && `+browserEnabled(card+" .pay"))
	tab.checkPageErrors()
}
