package main

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitQuietSeesABusyMachine: with every CPU spinning, the wait is never
// called quiet, and it gives up at its limit with the load it measured.
func TestWaitQuietSeesABusyMachine(t *testing.T) {
	if _, _, err := cpuTimes(); err != nil {
		t.Skipf("no /proc/stat here: %v", err)
	}
	var stop atomic.Bool
	defer stop.Store(true)
	for range runtime.NumCPU() {
		go func() {
			for !stop.Load() {
			}
		}()
	}
	q, err := waitQuiet(context.Background(), 300*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if q.Quiet || q.Busy < 0.5 || q.Waited < 300*time.Millisecond {
		t.Fatalf("every CPU spinning: got %+v, want not quiet, busy ≥ 50 %%, after the 300ms limit", q)
	}
}

// TestWaitQuietStopsWithItsContext: a cancelled run does not wait out the
// limit.
func TestWaitQuietStopsWithItsContext(t *testing.T) {
	if _, _, err := cpuTimes(); err != nil {
		t.Skipf("no /proc/stat here: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := waitQuiet(ctx, time.Minute, 10*time.Millisecond); err == nil {
		t.Fatal("waitQuiet on a cancelled context returned no error")
	}
}
