package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"seckill/app/dashboard"
	"seckill/app/metrics"
)

// dashboardServer serves the fixture's router on a real http.Server whose
// read and write timeouts and request timeout are far shorter than the
// stream's life, so a stream that outlives them shows it is exempt.
func dashboardServer(t *testing.T) (*fixture, *httptest.Server, *metrics.Metrics) {
	t.Helper()
	var m *metrics.Metrics
	f := newFixtureWith(t, nopQueue{}, func(d *Deps) {
		d.RequestTimeout = 100 * time.Millisecond
		m = d.Metrics
	})
	srv := httptest.NewUnstartedServer(f.h)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	return f, srv, m
}

// openStream starts a GET of the stream and returns the response.
func openStream(t *testing.T, ctx context.Context, base string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+dashboardStreamRoute, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	return res
}

// nextEvent reads one "data: {json}" event followed by its blank line.
func nextEvent(t *testing.T, r *bufio.Reader) dashboard.Frame {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: ")
	if !ok {
		t.Fatalf("event line %q does not start with \"data: \"", line)
	}
	if blank, err := r.ReadString('\n'); err != nil || blank != "\n" {
		t.Fatalf("event not ended by a blank line: %q, %v", blank, err)
	}
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	var f dashboard.Frame
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("event data %q is not a frame: %v", data, err)
	}
	return f
}

func TestDashboardStream(t *testing.T) {
	t.Parallel()
	f, srv, m := dashboardServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := openStream(t, ctx, srv.URL)
	r := bufio.NewReader(res.Body)

	first := nextEvent(t, r)
	if first.Purchases != nil {
		t.Errorf("first frame has rates %+v; a rate needs two samples", first.Purchases)
	}
	if len(first.Items) != 1 || first.Items[0].ID != 1 || first.Items[0].StockRedis != 10 || first.Items[0].StockDB != 10 {
		t.Errorf("first frame items = %+v, want item 1 with 10 units in both stores", first.Items)
	}
	// One purchase between two frames: the next frame's rate comes from the
	// purchase counter and its latency from the route's histogram.
	if rec := f.serve(http.MethodPost, "/api/v1/items/1/purchase", nil, "Authorization", f.userToken("alice")); rec.Code != http.StatusAccepted {
		t.Fatalf("purchase: %d %s", rec.Code, rec.Body.String())
	}
	var second dashboard.Frame
	for range 3 { // a frame sampled just before the purchase may come first
		second = nextEvent(t, r)
		if second.Purchases != nil && second.Purchases.Accepted > 0 {
			break
		}
	}
	if second.T <= first.T || second.Purchases == nil || second.Purchases.Accepted <= 0 {
		t.Fatalf("no frame after the first shows the accepted purchase: %+v", second)
	}
	if second.Latency == nil || second.Latency.P50 == nil || second.Latency.P99 == nil || *second.Latency.P99 < *second.Latency.P50 {
		t.Errorf("latency = %+v, want p50 <= p99 from the purchase", second.Latency)
	}
	if len(second.Items) != 1 || second.Items[0].StockRedis != 9 {
		t.Errorf("items = %+v, want 9 units left in Redis", second.Items)
	}
	// Past the request timeout and the server's read and write timeouts.
	third := nextEvent(t, r)
	if third.T <= second.T {
		t.Errorf("frames out of order: %d then %d", second.T, third.T)
	}

	// The viewer goes: the handler returns, which the observe middleware
	// records when it does.
	cancel()
	streams := func() float64 { return requestsOn(t, m, dashboardStreamRoute) }
	deadline := time.Now().Add(5 * time.Second)
	for streams() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stream handler did not end after its client went away")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDashboardStreamEndsOnShutdown(t *testing.T) {
	t.Parallel()
	_, srv, _ := dashboardServer(t)
	res := openStream(t, context.Background(), srv.URL)
	r := bufio.NewReader(res.Body)
	nextEvent(t, r)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a dashboard open: %v (after %s)", err, time.Since(start))
	}
	if _, err := io.ReadAll(r); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("stream after shutdown: %v", err)
	}
}

// requestsOn is seckill_http_requests_total summed over a route's methods
// and statuses.
func requestsOn(t *testing.T, m *metrics.Metrics, route string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range fams {
		if f.GetName() != "seckill_http_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == route {
					n += s.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// TestDashboardStreamsAreCapped: past MaxDashboardStreams open streams a
// viewer gets 503 unavailable at once; when one closes, a new one is let in.
func TestDashboardStreamsAreCapped(t *testing.T) {
	t.Parallel()
	_, srv, _ := dashboardServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, firstCancel := context.WithCancel(ctx)
	openStream(t, first, srv.URL)
	for range MaxDashboardStreams - 1 {
		openStream(t, ctx, srv.URL)
	}
	over := func() *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+dashboardStreamRoute, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := over()
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"unavailable"`) {
		t.Fatalf("stream %d: status %d %s, want 503 unavailable", MaxDashboardStreams+1, res.StatusCode, body)
	}
	firstCancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res := over()
		code := res.StatusCode
		_ = res.Body.Close()
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed stream never made room for a new one")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDashboardLateViewerGetsTheHistoryFirst: a viewer who connects after
// another has seen frames gets those frames first, oldest first, before
// any newer one: a page opened after a lab run draws the run. It holds
// whether the viewers sample (no Deps.Running) or a recording loop does.
func TestDashboardLateViewerGetsTheHistoryFirst(t *testing.T) {
	t.Parallel()
	for _, recorded := range []bool{false, true} {
		t.Run(map[bool]string{false: "viewers sample", true: "recorded"}[recorded], func(t *testing.T) {
			t.Parallel()
			running, stop := context.WithCancel(context.Background())
			defer stop()
			f := newFixtureWith(t, nopQueue{}, func(d *Deps) {
				if recorded {
					d.Running = running
				}
			})
			srv := httptest.NewServer(f.h)
			t.Cleanup(srv.Close)

			const n = 3
			early, leave := context.WithCancel(context.Background())
			r := bufio.NewReader(openStream(t, early, srv.URL).Body)
			var seen []int64
			for range n {
				seen = append(seen, nextEvent(t, r).T)
			}
			leave()

			late := bufio.NewReader(openStream(t, context.Background(), srv.URL).Body)
			var got []int64
			for len(got) == 0 || got[len(got)-1] < seen[n-1] {
				got = append(got, nextEvent(t, late).T)
			}
			// Recorded, the history may start before the first viewer came.
			got = got[len(got)-min(len(got), n):]
			for i := range seen {
				if i >= len(got) || got[i] != seen[i] {
					t.Fatalf("late viewer's first frames end %v, want %v (the first viewer's)", got, seen)
				}
			}
		})
	}
}
