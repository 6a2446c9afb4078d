package e2e

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"seckill/app/config"
	"seckill/app/tools/lab"
)

// TestBrowserLingeringLab opens the dashboard only after the oversell
// lab's unprotected run has printed its figures, while the run lingers,
// and checks that the page draws that run anyway: the accepted purchases
// and the Redis stock below zero reach it through the stream's history,
// since nothing is bought any more while the run lingers. Then the run
// ends, and the page must reconnect by itself to the protected run's
// system and draw its sold-out answers. With SECKILL_SCREENSHOT_LAB set to
// a path it saves a screenshot of the page during the first linger there
// (docs/labs/dashboard-lingering.png is one).
func TestBrowserLingeringLab(t *testing.T) {
	chromium := browserChromiumPath(t)
	tab := browserOpen(t, chromium, 1400, 1100) // before the run: it takes a while to start
	l, ok := lab.Find("oversell")
	if !ok {
		t.Fatal("lab oversell is not registered")
	}
	base := config.Default()
	base.HTTPAddr = "127.0.0.1:0"
	pr, pw := io.Pipe()
	// The picture shows the workshop's crowd (400 buyers); the check alone
	// needs no more than the lab's own test uses (100).
	shotPath := os.Getenv("SECKILL_SCREENSHOT_LAB")
	scale, linger := 0.25, 10*time.Second
	if shotPath != "" {
		scale, linger = 1, 40*time.Second // the picture waits for 20 s of frames
	}
	env := &lab.Env{Base: base, Out: pw, Scale: scale, Linger: linger}
	defer env.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	finished := make(chan error, 1)
	go func() {
		_, err := lab.RunOne(ctx, env, l, pw)
		_ = pw.Close()
		finished <- err
	}()
	lingering := regexp.MustCompile(`stays up for \S+: (http://\S+/dashboard)`)
	sc := bufio.NewScanner(pr)
	var url string
	for url == "" && sc.Scan() {
		t.Log(sc.Text())
		if m := lingering.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatalf("the run never said it lingers: %v", <-finished)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	tab.do("open the dashboard of the lingering run", chromedp.Navigate(url))
	tab.waitJS("the run's accepted purchases are drawn",
		`window.seckillDashboard && window.seckillDashboard.charts.purchases.plot.data[1].some(v => v > 0)`)
	tab.waitJS("the run's Redis stock below zero is drawn",
		`window.seckillDashboard.charts.stock.plot.data[2].some(v => v !== null && v < 0)`)
	if path := shotPath; path != "" {
		// Twenty seconds into the linger, as a room sees it: the run, then
		// its figures standing still.
		tab.waitUntil("twenty seconds of frames", 40*time.Second,
			`window.seckillDashboard.charts.purchases.plot.data[0].length >= 20`)
		shot := tab.fullScreenshot()
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatalf("write screenshot: %v", err)
		}
		t.Logf("screenshot of the lingering lab's dashboard: %s (%d bytes)", path, len(shot))
	}
	tab.waitUntil("the page reconnects to the protected run and draws its sold-out answers", linger+30*time.Second,
		`window.seckillDashboard.reconnects >= 1 && window.seckillDashboard.charts.purchases.plot.data[2].some(v => v > 0)`)
	tab.checkPageErrors()
	cancel() // ends the protected run's linger
	if err := <-finished; err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("the lab run ended: %v", err)
	}
}
