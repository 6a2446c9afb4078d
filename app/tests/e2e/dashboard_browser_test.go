package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserDashboard opens /dashboard in headless Chromium during a short
// spike (a few hundred users buying one sale at once) and checks that the
// charts move with it. With SECKILL_SCREENSHOT_DASHBOARD set to a path it
// saves a screenshot of the page during the spike there (docs/dashboard.png
// is one).
func TestBrowserDashboard(t *testing.T) {
	chromium := browserChromiumPath(t)
	base := browserStartSystem(t)
	tab := browserOpen(t, chromium, 1400, 1100)

	tab.do("open the dashboard", chromedp.Navigate(base+"/dashboard"))
	tab.waitJS("the first frame arrives", `window.seckillDashboard && window.seckillDashboard.frames >= 1`)
	tab.waitJS("six charts are drawn (the waiting room's among them)", `document.querySelectorAll('.uplot canvas').length === 6`)
	const points = `window.seckillDashboard.charts.purchases.plot.data[0].length`
	before, err := chromedp.Run(tab.ctx, chromedp.Evaluate[int](points))
	if err != nil {
		t.Fatalf("count the purchase chart's points: %v", err)
	}

	now := time.Now().UTC().Truncate(time.Second)
	const users, stock = 400, 250
	item := browserCreateSale(t, base, browserSaleDraft{
		Name: "Workshop spike", Description: "Watched on the dashboard.",
		PriceCents: 1000, Stock: stock, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	})
	tokens := make([]string, users)
	for i := range tokens {
		tokens[i] = dashboardLogin(t, base, fmt.Sprintf("spike-%03d", i))
	}

	// The spike: waves of buyers a quarter of a second apart, so that it
	// lasts a few of the page's one-second frames instead of one.
	const wave = 25
	var accepted, soldOut atomic.Int64
	var statusMu sync.Mutex
	statuses := map[int]int{}
	spikeDone := make(chan struct{})
	go func() {
		defer close(spikeDone)
		var wg sync.WaitGroup
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for w := 0; w < users; w += wave {
			<-tick.C
			start := make(chan struct{})
			for _, tok := range tokens[w : w+wave] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					code := dashboardBuy(base, item, tok)
					statusMu.Lock()
					statuses[code]++
					statusMu.Unlock()
					switch code {
					case http.StatusAccepted:
						accepted.Add(1)
					case http.StatusConflict:
						soldOut.Add(1)
					}
				}()
			}
			close(start)
		}
		wg.Wait()
	}()

	tab.waitUntil("the purchases chart shows accepted purchases", 20*time.Second,
		`window.seckillDashboard.charts.purchases.plot.data[1].some(v => v > 0)`)
	tab.waitUntil("the stock chart shows the sale's units going", 20*time.Second,
		`window.seckillDashboard.charts.stock.plot.data[1].some(v => v !== null && v < `+fmt.Sprint(100+stock)+`)`)
	tab.waitUntil("the sold-out answers show", 20*time.Second,
		`window.seckillDashboard.charts.purchases.plot.data[2].some(v => v > 0)`)
	<-spikeDone
	if path := os.Getenv("SECKILL_SCREENSHOT_DASHBOARD"); path != "" {
		// Taken as the spike ends, while its figures fill the charts.
		shot := tab.fullScreenshot()
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatalf("write screenshot: %v", err)
		}
		t.Logf("screenshot of the dashboard: %s (%d bytes)", path, len(shot))
	} else {
		shot := tab.fullScreenshot()
		_ = os.WriteFile(filepath.Join(t.TempDir(), "dashboard.png"), shot, 0o644)
	}
	if accepted.Load() != stock || soldOut.Load() == 0 {
		statusMu.Lock()
		t.Errorf("spike: %d accepted, %d sold out (statuses %v); want %d accepted and some sold out", accepted.Load(), soldOut.Load(), statuses, stock)
		statusMu.Unlock()
	}
	tab.waitUntil("the chart keeps growing", 10*time.Second, fmt.Sprintf(`%s >= %d`, points, before+3))
	tab.waitUntil("the confirmed orders reach the sale's stock", 20*time.Second,
		`window.seckillDashboard.charts.orders.plot.data[2].some(v => v >= `+fmt.Sprint(stock)+`)`)
	tab.waitJS("the latency chart has a p99", `window.seckillDashboard.charts.latency.plot.data[2].some(v => v > 0)`)
	tab.checkPageErrors()
}

// dashboardLogin returns a bearer token for user.
func dashboardLogin(t *testing.T, base, user string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"user_id": user})
	resp, err := browserHTTP.Post(base+"/api/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		t.Fatalf("login %s: %s (%v)", user, resp.Status, err)
	}
	return out.Token
}

// dashboardBuy sends one purchase and returns its status (0 if it failed).
func dashboardBuy(base string, item int64, token string) int {
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/api/v1/items/%d/purchase", base, item), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := browserHTTP.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}
