package e2e

import (
	"net/http"
	"strings"
	"testing"

	"seckill/app/bootstrap"
)

// TestWorkerServesOpsEndpoints: a worker-only instance can be probed and
// scraped, and serves no API.
func TestWorkerServesOpsEndpoints(t *testing.T) {
	b := newBackends(t)
	w := b.start(t, "worker-1", bootstrap.Roles{Worker: true}, nil)
	if r := w.do("GET", "/healthz", "", nil); r.Status != 200 {
		t.Fatalf("healthz: %d %s", r.Status, r.Raw)
	}
	if r := w.do("GET", "/readyz", "", nil); r.Status != 200 || r.str("status") != "ok" {
		t.Fatalf("readyz: %d %s", r.Status, r.Raw)
	}
	if r := w.do("GET", "/api/v1/items", "", nil); r.Status != 404 {
		t.Fatalf("a worker served the API: %d %s", r.Status, r.Raw)
	}
	res, err := client.Get(w.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := new(strings.Builder)
	_, _ = ioCopy(buf, res)
	if res.StatusCode != http.StatusOK || !strings.Contains(buf.String(), "seckill_worker_lag") {
		t.Fatalf("metrics: %d, lag gauge present=%v", res.StatusCode, strings.Contains(buf.String(), "seckill_worker_lag"))
	}
}
