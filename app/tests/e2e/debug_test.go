package e2e

import (
	"testing"

	"seckill/app/bootstrap"
	"seckill/app/config"
)

// status is the status of GET url, or 0 on a transport error.
func status(t *testing.T, url string) int {
	t.Helper()
	res, err := client.Get(url)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// TestDebugAddrServesPprofNotThePublicPort: with --debug-addr, pprof and
// /metrics answer there, pprof never on the public port, and
// --metrics-on-public-port=false takes /metrics off the public port only.
// Without --debug-addr there is no debug listener at all.
func TestDebugAddrServesPprofNotThePublicPort(t *testing.T) {
	b := newBackends(t)
	plain := b.start(t, "api-plain", bootstrap.Roles{API: true}, nil)
	if plain.DebugURL() != "" {
		t.Errorf("a debug listener at %s without --debug-addr", plain.DebugURL())
	}
	if got := status(t, plain.url+"/metrics"); got != 200 {
		t.Errorf("public /metrics by default: %d, want 200", got)
	}

	for _, public := range []bool{true, false} {
		in := b.start(t, "api-debug", bootstrap.Roles{API: true}, func(c *config.Config) {
			c.DebugAddr = "127.0.0.1:0"
			c.MetricsOnPublicPort = public
		})
		dbg := in.DebugURL()
		if dbg == "" || dbg == in.url {
			t.Fatalf("debug URL %q, public %q: want a listener of its own", dbg, in.url)
		}
		for path, want := range map[string]int{"/debug/pprof/": 200, "/debug/pprof/cmdline": 200, "/metrics": 200, "/api/v1/items": 404} {
			if got := status(t, dbg+path); got != want {
				t.Errorf("debug %s: %d, want %d", path, got, want)
			}
		}
		wantMetrics := 404
		if public {
			wantMetrics = 200
		}
		for path, want := range map[string]int{"/debug/pprof/": 404, "/debug/pprof/cmdline": 404, "/metrics": wantMetrics, "/healthz": 200} {
			if got := status(t, in.url+path); got != want {
				t.Errorf("public %s with --metrics-on-public-port=%v: %d, want %d", path, public, got, want)
			}
		}
	}
}
