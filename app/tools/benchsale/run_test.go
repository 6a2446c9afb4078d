package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain lets the test binary be the broker child too: startBroker runs
// this same executable with brokerChildEnv set, as it does benchsale.
func TestMain(m *testing.M) {
	if spec := os.Getenv(brokerChildEnv); spec != "" {
		os.Exit(brokerChild(spec))
	}
	os.Exit(m.Run())
}

// TestEmbeddedRunSettles runs benchsale end to end on embedded backends,
// as `make bench BENCH_FLAGS=-embedded` does, with one-second runs: the
// baseline, the purchase, and (g), which embedded backends skip. It must
// exit 0 with (b)'s sale settled exactly. Session 3's split into an API and
// a worker instance broke this mode (the worker got a database of its own)
// and nothing noticed.
func TestEmbeddedRunSettles(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("wrk is not installed; .ci/run installs it (apt-get install -y wrk)")
		}
		t.Skip("wrk is not installed (apt-get install -y wrk)")
	}
	var out, log bytes.Buffer
	code := run([]string{"-embedded", "-scenarios=abg", "-duration=1s", "-p99-probes=0", "-warmup=0", "-quiet=0"}, &out, &log)
	if code != 0 {
		t.Fatalf("benchsale exited %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), log.String())
	}
	report := out.String()
	for _, want := range []string{
		"(b) purchase, distinct users",
		"ok: consistent, nothing pending, confirmed == accepted, nothing oversold",
		"(EMBEDDED backends: not comparable)",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	if !strings.Contains(log.String(), "(g) skipped") {
		t.Errorf("(g) was not skipped on embedded backends:\n%s", log.String())
	}
}
