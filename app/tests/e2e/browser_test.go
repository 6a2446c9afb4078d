package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"seckill/app/bootstrap"
	"seckill/app/config"
)

// The browser test drives the real sale page and admin page in headless
// Chromium against the whole system started in-process, as `make run` does.

const (
	browserAdminToken = "browser-test-admin-token"
	// browserStep bounds one browser action; waits for the system (an order
	// to confirm, a countdown to end) pass their own deadline.
	browserStep = 10 * time.Second
)

func TestBrowserSalePage(t *testing.T) {
	chromium := browserChromiumPath(t)
	start := time.Now()
	base := browserStartSystem(t)
	tab := browserOpen(t, chromium, 1280, 900)
	t.Logf("system and browser up in %s", time.Since(start).Round(time.Millisecond))

	seeded := browserFindItem(t, base, "active")
	// The screenshot in the README must show what `make run` shows, so the
	// test's own sales are created only after it is taken.
	demo := browserItemIDs(t, base)
	var oneUnit int64

	tab.do("open the sale page", chromedp.Navigate(base+"/"))
	tab.waitJS("the seeded sale is listed", browserCard(seeded)+` !== null`)
	// A marker that a reload would wipe out.
	tab.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__browserNoReload = true`))

	t.Run("buy_confirmed", func(t *testing.T) {
		tab := tab.with(t)
		tab.login("alice")
		card := browserCardSel(seeded)
		tab.waitJS("the Buy button is enabled", browserEnabled(card+" .buy"))
		tab.do("click Buy", chromedp.Click(chromedp.CSS(card+" .buy")))
		tab.waitJS("an order id is shown", `/^[1-9][0-9]*-[0-9a-f]{28}$/.test(`+browserTextOf(card+" .order-id")+`)`)
		tab.waitUntil("the order is confirmed", 10*time.Second,
			browserTextOf(card+" .order-status")+` === "confirmed"`)
		tab.waitJS("the confirmation message is shown", `/confirmed/i.test(`+browserTextOf(card+" .message")+`)`)
		tab.waitJS("the page shows the demo sales and nothing else",
			`JSON.stringify([...document.querySelectorAll('#items [data-item-id]')].map(e => +e.dataset.itemId).sort((a, b) => a - b)) === '`+
				browserJSONIDs(demo)+`'`)

		shot := tab.fullScreenshot()
		path := os.Getenv("SECKILL_SCREENSHOT")
		if path == "" {
			path = filepath.Join(t.TempDir(), "screenshot.png")
		}
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatalf("write screenshot: %v", err)
		}
		t.Logf("screenshot of the sale page: %s (%d bytes)", path, len(shot))
	})

	t.Run("sold_out_for_second_user", func(t *testing.T) {
		tab := tab.with(t)
		// Setup through the admin API, not the page: a sale with one unit.
		now := time.Now().UTC().Truncate(time.Second)
		oneUnit = browserCreateSale(t, base, browserSaleDraft{
			Name: "Limited sneaker drop", Description: "Only one pair. One per customer.",
			PriceCents: 12900, Stock: 1, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
		})
		card := browserCardSel(oneUnit)
		tab.waitJS("the one-unit sale is listed", browserCard(oneUnit)+` !== null`)
		tab.waitJS("A (alice) is still logged in", browserTextOf("#current-user")+` === "alice"`)
		tab.waitJS("Buy is enabled for A", browserEnabled(card+" .buy"))
		tab.do("A clicks Buy", chromedp.Click(chromedp.CSS(card+" .buy")))
		tab.waitUntil("A's order is confirmed", 10*time.Second,
			browserTextOf(card+" .order-status")+` === "confirmed"`)

		tab.do("log out", chromedp.Click(chromedp.ID("logout")))
		tab.waitJS("the login form is back", browserVisible("#user-id"))
		tab.waitJS("A's order is no longer shown", browserHidden(card+" .order"))
		// B logs in with the keyboard: type the id and press Enter.
		tab.do("B types a user id and presses Enter",
			chromedp.SendKeys(chromedp.ID("user-id"), "bob"+kb.Enter))
		tab.waitJS("B is logged in", browserTextOf("#current-user")+` === "bob"`)
		tab.waitJS("Buy is enabled for B", browserEnabled(card+" .buy"))
		tab.do("B clicks Buy", chromedp.Click(chromedp.CSS(card+" .buy")))
		tab.waitJS("B sees sold out", `/sold out/i.test(`+browserTextOf(card+" .message")+`)`)
		tab.waitJS("B has no order", browserHidden(card+" .order"))
		tab.waitJS("the card shows the sold-out badge", browserTextOf(card+" .status-badge")+` === "Sold out"`)
	})

	t.Run("countdown_enables_buy", func(t *testing.T) {
		tab := tab.with(t)
		startsAt := time.Now().UTC().Add(5 * time.Second).Truncate(time.Second)
		upcoming := browserCreateSale(t, base, browserSaleDraft{
			Name: "Midnight drop", Description: "Opens in a few seconds.",
			PriceCents: 2500, Stock: 10, StartsAt: startsAt, EndsAt: startsAt.Add(time.Hour),
		})
		if left := time.Until(startsAt); left < 2*time.Second {
			t.Fatalf("the sale starts in %s: too soon to see the countdown", left)
		}
		card := browserCardSel(upcoming)
		tab.waitJS("the upcoming sale shows a countdown", browserVisible(card+" .countdown")+
			` && /^Starts in 00:0[1-5]$/.test(`+browserTextOf(card+" .countdown")+`)`)
		tab.waitJS("Buy is disabled before the start", `document.querySelector('`+card+` .buy').disabled === true`)
		if time.Now().After(startsAt) {
			t.Fatal("the sale started before the disabled state was checked")
		}
		tab.waitUntil("the countdown reaches zero and Buy enables", time.Until(startsAt)+5*time.Second,
			browserEnabled(card+" .buy"))
		if early := time.Until(startsAt); early > 300*time.Millisecond {
			t.Errorf("Buy enabled %s before the sale starts", early)
		}
		tab.waitJS("the countdown is gone", browserHidden(card+" .countdown"))
		tab.waitJS("the badge says Live", browserTextOf(card+" .status-badge")+` === "Live"`)
		tab.waitJS("the page was not reloaded", `window.__browserNoReload === true`)
		// The server agrees that the sale is open.
		tab.do("click Buy right after the start", chromedp.Click(chromedp.CSS(card+" .buy")))
		tab.waitUntil("the order is confirmed", 10*time.Second,
			browserTextOf(card+" .order-status")+` === "confirmed"`)
	})

	t.Run("admin_stats_and_restock", func(t *testing.T) {
		tab := tab.with(t)
		row := browserCardSel(oneUnit)
		tab.do("open the admin page", chromedp.Navigate(base+"/admin"))
		tab.waitJS("every form field has a label", browserAllLabelled)
		tab.do("enter the admin token",
			chromedp.SendKeys(chromedp.ID("admin-token"), browserAdminToken+kb.Enter))
		tab.waitUntil("stats show one confirmed order and consistent books", 10*time.Second,
			browserTextOf(row+" .s-confirmed")+` === "1" && `+browserTextOf(row+" .s-left-db")+` === "0" && `+
				`document.querySelector('`+row+` .consistency').dataset.state === "consistent"`)
		tab.do("restock 2 units",
			chromedp.SetValue(chromedp.CSS(row+" .restock-add"), "2"),
			chromedp.Click(chromedp.CSS(row+" .restock-btn")))
		tab.waitUntil("stats show 3 units in total, 2 left, still consistent", 10*time.Second,
			browserTextOf(row+" .s-total")+` === "3" && `+browserTextOf(row+" .s-left-redis")+` === "2" && `+
				`document.querySelector('`+row+` .consistency').dataset.state === "consistent"`)
	})

	t.Run("phone_layout", func(t *testing.T) {
		phone := browserOpenTab(t, tab, 390, 844)
		phone.do("open the sale page on a phone-sized screen", chromedp.Navigate(base+"/"))
		phone.waitJS("the sales are listed", browserCard(seeded)+` !== null`)
		phone.waitJS("every form field has a label", browserAllLabelled)
		phone.waitJS("nothing overflows sideways",
			`document.documentElement.scrollWidth <= window.innerWidth`)
		phone.waitJS("Buy buttons are at least 44px tall",
			`[...document.querySelectorAll('.buy')].every(b => b.getBoundingClientRect().height >= 44)`)
		shot := phone.fullScreenshot()
		path := filepath.Join(t.TempDir(), "screenshot-phone.png")
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatalf("write screenshot: %v", err)
		}
		t.Logf("phone screenshot: %s", path)
	})

	tab.checkPageErrors()
	t.Logf("browser test took %s", time.Since(start).Round(time.Millisecond))
}

// ---------------------------------------------------------------- system

// browserChromiumPath finds Chromium: $SECKILL_TEST_CHROMIUM, else
// /usr/bin/chromium. Without one the test skips, or fails under CI=true.
func browserChromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("SECKILL_TEST_CHROMIUM")
	explicit := path != ""
	if !explicit {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("no Chromium at %s (set SECKILL_TEST_CHROMIUM, or apt-get install chromium): %v", path, err)
		if explicit || os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// browserStartSystem starts seckill in-process on embedded backends with the
// demo seed, as `make run` does, and returns its base URL.
func browserStartSystem(t *testing.T, edits ...func(*config.Config)) string {
	t.Helper()
	cfg := config.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.SQLitePath = filepath.Join(t.TempDir(), "seckill.db")
	cfg.SeedDemo = true
	cfg.AdminToken = browserAdminToken
	for _, edit := range edits {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := bootstrap.Open(ctx, cfg, bootstrap.Roles{API: true, Worker: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return m.URL()
}

// browserSaleDraft is the body of POST /api/v1/admin/items.
type browserSaleDraft struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	PriceCents  int64     `json:"price_cents"`
	Stock       int64     `json:"stock"`
	StartsAt    time.Time `json:"starts_at"`
	EndsAt      time.Time `json:"ends_at"`
	Protection  string    `json:"protection,omitempty"`
}

// browserItem is the part of an item the test reads.
type browserItem struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

var browserHTTP = &http.Client{Timeout: 10 * time.Second}

// browserCreateSale creates a sale through the admin API and returns its id.
func browserCreateSale(t *testing.T, base string, d browserSaleDraft) int64 {
	t.Helper()
	body, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/admin/items", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+browserAdminToken)
	resp, err := browserHTTP.Do(req)
	if err != nil {
		t.Fatalf("create sale: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create sale: %s: %s", resp.Status, raw)
	}
	var it browserItem
	if err := json.Unmarshal(raw, &it); err != nil || it.ID <= 0 {
		t.Fatalf("create sale: bad body %s (%v)", raw, err)
	}
	return it.ID
}

// browserItemIDs returns the ids of every listed item, ascending.
func browserItemIDs(t *testing.T, base string) []int64 {
	t.Helper()
	resp, err := browserHTTP.Get(base + "/api/v1/items")
	if err != nil {
		t.Fatalf("list items: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Items []browserItem `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("list items: %v", err)
	}
	var ids []int64
	for _, it := range out.Items {
		ids = append(ids, it.ID)
	}
	slices.Sort(ids)
	return ids
}

// browserJSONIDs renders ids as the page's JSON.stringify would.
func browserJSONIDs(ids []int64) string {
	b, _ := json.Marshal(ids)
	return string(b)
}

// browserFindItem returns the id of the first listed item with the status.
func browserFindItem(t *testing.T, base, status string) int64 {
	t.Helper()
	resp, err := browserHTTP.Get(base + "/api/v1/items")
	if err != nil {
		t.Fatalf("list items: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Items []browserItem `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("list items: %v", err)
	}
	for _, it := range out.Items {
		if it.Status == status {
			return it.ID
		}
	}
	t.Fatalf("no %s item among %+v", status, out.Items)
	return 0
}

// ---------------------------------------------------------------- browser

// browserTab is one Chromium tab bound to a test.
type browserTab struct {
	t   *testing.T
	ctx context.Context
	// errs collects uncaught exceptions and console errors of the page
	// (not failed HTTP statuses, which the page provokes on purpose).
	mu   *sync.Mutex
	errs *[]string
}

// browserOpen starts headless Chromium with a fresh profile and opens a tab
// with the given window size.
func browserOpen(t *testing.T, execPath string, width, height int) *browserTab {
	t.Helper()
	// The browser lives as long as this context (see chromedp.Run), so its
	// deadline bounds a hung browser without limiting each action.
	life, cancelLife := context.WithTimeout(context.Background(), 3*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(life,
		chromedp.ExecPath(execPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for the browser process to exit
		cancelLife()
	})
	tab := &browserTab{t: t, ctx: ctx, mu: &sync.Mutex{}, errs: &[]string{}}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium %s: %v", execPath, err)
	}
	tab.listen()
	tab.do("set the viewport", chromedp.EmulateViewport(int64(width), int64(height)))
	return tab
}

// browserOpenTab opens another tab of the same browser with its own
// viewport, bound to t.
func browserOpenTab(t *testing.T, parent *browserTab, width, height int) *browserTab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent.ctx)
	t.Cleanup(cancel)
	tab := &browserTab{t: t, ctx: ctx, mu: parent.mu, errs: parent.errs}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	tab.listen()
	tab.do("set a phone viewport", chromedp.EmulateViewport(int64(width), int64(height),
		chromedp.EmulateScale(2), chromedp.EmulateMobile))
	return tab
}

func (b *browserTab) listen() {
	err := chromedp.Listen(b.ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "uncaught exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *log.EventEntryAdded:
			// 4xx answers (sold out, already purchased) are the page working
			// as designed; anything else at error level is a bug (a script
			// error, a CSP violation, a missing asset).
			if ev.Entry.Level == log.EntryLevelError && ev.Entry.Source != log.EntrySourceNetwork {
				msg = fmt.Sprintf("console %s error: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
		if msg != "" {
			b.mu.Lock()
			*b.errs = append(*b.errs, msg)
			b.mu.Unlock()
		}
	})
	if err != nil {
		b.t.Fatalf("listen to the page: %v", err)
	}
}

// with binds the tab to a subtest.
func (b *browserTab) with(t *testing.T) *browserTab {
	c := *b
	c.t = t
	return &c
}

func (b *browserTab) checkPageErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range *b.errs {
		b.t.Errorf("page error: %s", e)
	}
}

// do runs actions with a per-step deadline and fails the test on error.
func (b *browserTab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.pageText())
	}
}

// waitJS polls a JavaScript predicate until it is truthy, for up to
// browserStep.
func (b *browserTab) waitJS(what, expr string) {
	b.t.Helper()
	b.waitUntil(what, browserStep, expr)
}

// waitUntil polls a JavaScript predicate until it is truthy or the deadline
// passes; it never sleeps a fixed time.
func (b *browserTab) waitUntil(what string, d time.Duration, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d+2*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		if errors.Is(err, chromedp.ErrPollingTimeout) {
			err = fmt.Errorf("not true after %s: %s", d, expr)
		}
		b.t.Fatalf("%s: %v\n%s", what, err, b.pageText())
	}
}

// login logs in through the login box.
func (b *browserTab) login(user string) {
	b.t.Helper()
	b.waitJS("the login form is shown", browserVisible("#user-id"))
	b.do("type a user id and click Log in",
		chromedp.SendKeys(chromedp.ID("user-id"), user),
		chromedp.Click(chromedp.ID("login")))
	b.waitJS("logged in as "+user, browserTextOf("#current-user")+` === `+strconv.Quote(user))
}

func (b *browserTab) fullScreenshot() []byte {
	b.t.Helper()
	// A light page with no motion, so that the picture does not depend on
	// the machine's settings or on the moment of a pulse animation.
	b.do("pin the color scheme and reduce motion", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{
				{Name: "prefers-color-scheme", Value: "light"},
				{Name: "prefers-reduced-motion", Value: "reduce"},
			},
		})
		return err
	}))
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	// app/web's TestPicturesAreNewerThanThePages reads the capture time.
	return stampCaptureTime(buf, time.Now())
}

// pageText is the visible text of the page, for failure messages.
func (b *browserTab) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(page text unavailable: " + err.Error() + ")"
	}
	if len(s) > 3000 {
		s = s[:3000] + "…"
	}
	return "page text:\n" + s
}

// ---------------------------------------------------------------- selectors and predicates

// browserCardSel is the CSS selector of an item's card (or admin row).
func browserCardSel(id int64) string {
	return fmt.Sprintf(`[data-item-id="%d"]`, id)
}

func browserCard(id int64) string {
	return `document.querySelector('` + browserCardSel(id) + `')`
}

// browserTextOf is a JS expression for the trimmed text of the first match,
// or "" when there is none.
func browserTextOf(sel string) string {
	return `((document.querySelector('` + sel + `') || {}).textContent || "").trim()`
}

func browserEnabled(sel string) string {
	return `(() => { const e = document.querySelector('` + sel + `'); return !!e && !e.disabled; })()`
}

func browserVisible(sel string) string {
	return `(() => { const e = document.querySelector('` + sel + `'); return !!e && e.checkVisibility(); })()`
}

func browserHidden(sel string) string {
	return `(() => { const e = document.querySelector('` + sel + `'); return !e || !e.checkVisibility(); })()`
}

// browserAllLabelled is true when every visible form field has a label.
var browserAllLabelled = strings.TrimSpace(`
[...document.querySelectorAll('input, textarea, select')]
  .filter(e => e.type !== 'hidden')
  .every(e => e.labels.length > 0 || e.hasAttribute('aria-label'))`)
