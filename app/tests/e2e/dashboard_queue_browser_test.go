package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserDashboardQueue opens /dashboard in headless Chromium during a
// queued spike: 500 buyers join a waiting room (admit_per_second 40, 300
// units) before it opens, then poll it and buy when admitted. It checks
// that the waiting-room chart shows the line filling and then draining at
// the admission rate. With SECKILL_SCREENSHOT_DASHBOARD_QUEUE set to a path
// it saves a screenshot there, taken mid-drain (docs/dashboard-queue.png).
func TestBrowserDashboardQueue(t *testing.T) {
	chromium := browserChromiumPath(t)
	base := browserStartSystem(t)
	tab := browserOpen(t, chromium, 1400, 1100)
	tab.do("open the dashboard", chromedp.Navigate(base+"/dashboard"))
	tab.waitJS("the first frame arrives", `window.seckillDashboard && window.seckillDashboard.frames >= 1`)

	const users, stock, rate = 500, 300, 40
	now := time.Now().UTC().Truncate(time.Second)
	item := queueCreateSale(t, base, now.Add(4*time.Second), stock, rate)
	tokens := make([]string, users)
	for i := range tokens {
		tokens[i] = dashboardLogin(t, base, fmt.Sprintf("line-%03d", i))
		if st, body := queueCall(base, "POST", item, "queue", tokens[i], ""); st != http.StatusAccepted {
			t.Fatalf("join %d: %d %s", i, st, body)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var bought, soldOut atomic.Int64
	var wg sync.WaitGroup
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			queueWaitAndBuy(ctx, base, item, tok, &bought, &soldOut)
		}()
	}
	defer wg.Wait()
	defer cancel()

	const waiting = `window.seckillDashboard.charts.queue.plot.data[1]`
	tab.waitUntil("the chart shows the line full", 20*time.Second, waiting+`.some(v => v >= 400)`)
	// Draining: the latest reading is well below the peak, units still left.
	tab.waitUntil("the chart shows the line draining", 20*time.Second,
		`(() => { const d = `+waiting+`.filter(v => v !== null); return d.length > 0 && d[d.length-1] <= 260; })()`)
	shot := tab.fullScreenshot()
	path := os.Getenv("SECKILL_SCREENSHOT_DASHBOARD_QUEUE")
	if path == "" {
		path = filepath.Join(t.TempDir(), "dashboard-queue.png")
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatalf("write screenshot: %v", err)
	}
	t.Logf("screenshot of the dashboard during a queued spike: %s (%d bytes)", path, len(shot))
	tab.waitUntil("admissions run at about the item's rate", 10*time.Second,
		`window.seckillDashboard.charts.queue.plot.data[2].some(v => v >= `+fmt.Sprint(rate/2)+`)`)
	wg.Wait()
	if bought.Load() != stock || soldOut.Load() != users-stock {
		t.Errorf("queued spike: %d bought, %d saw sold_out; want %d and %d", bought.Load(), soldOut.Load(), stock, users-stock)
	}
	tab.checkPageErrors()
}

// queueCreateSale creates a queue item opening at opens.
func queueCreateSale(t *testing.T, base string, opens time.Time, stock, rate int) int64 {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"name": "Queued spike", "description": "A waiting room, watched on the dashboard.", "price_cents": 1000,
		"stock": stock, "starts_at": opens, "ends_at": opens.Add(time.Hour), "protection": "queue", "admit_per_second": rate,
	})
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/admin/items", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+browserAdminToken)
	resp, err := browserHTTP.Do(req)
	if err != nil {
		t.Fatalf("create queue sale: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var it browserItem
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &it) != nil || it.ID <= 0 {
		t.Fatalf("create queue sale: %s %s", resp.Status, raw)
	}
	return it.ID
}

// queueCall sends one request to the item's sub-resource what ("queue" or
// "purchase") and returns the status and body (0 if it failed).
func queueCall(base, method string, item int64, what, token, body string) (int, []byte) {
	req, _ := http.NewRequest(method, fmt.Sprintf("%s/api/v1/items/%d/%s", base, item, what), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := browserHTTP.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// queueWaitAndBuy polls a buyer's place every half second until admitted
// (then buys with the admission) or sold out.
func queueWaitAndBuy(ctx context.Context, base string, item int64, token string, bought, soldOut *atomic.Int64) {
	for ctx.Err() == nil {
		var st struct {
			State  string `json:"state"`
			Ticket string `json:"ticket"`
		}
		code, raw := queueCall(base, "GET", item, "queue", token, "")
		if code == http.StatusOK && json.Unmarshal(raw, &st) == nil {
			switch st.State {
			case "admitted":
				tk, _ := json.Marshal(map[string]string{"ticket": st.Ticket})
				// A 409 already_purchased answers a retry whose first try
				// went through unanswered (a client timeout on a busy box).
				c, body := queueCall(base, "POST", item, "purchase", token, string(tk))
				if c == http.StatusAccepted || (c == http.StatusConflict && strings.Contains(string(body), `"already_purchased"`)) {
					bought.Add(1)
					return
				}
			case "sold_out":
				soldOut.Add(1)
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}
