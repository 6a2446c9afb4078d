package lab

import (
	"bytes"
	"context"
	"testing"
	"time"

	"seckill/app/config"
)

// runLab runs one registered lab at a small scale on embedded backends and
// fails unless its figures point the way its guide predicts.
func runLab(t *testing.T, name string, scale float64) Report {
	t.Helper()
	l, ok := Find(name)
	if !ok {
		t.Fatalf("lab %s is not registered", name)
	}
	base := config.Default()
	base.HTTPAddr = "127.0.0.1:0"
	var out bytes.Buffer
	env := &Env{Base: base, Out: &out, Scale: scale}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := RunOne(ctx, env, l, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Holds() {
		t.Fatalf("%s does not hold", rep.Line())
	}
	return rep
}

func TestLabOversell(t *testing.T) {
	rep := runLab(t, "oversell", 0.25)
	// The protected run sells exactly the stock, never one more.
	if rep.Protected.Metric != 0 {
		t.Errorf("protected run oversold %v units", rep.Protected.Metric)
	}
}

func TestLabDBOversell(t *testing.T) {
	rep := runLab(t, "db-oversell", 0.25)
	if rep.Protected.Metric != 0 {
		t.Errorf("protected run oversold %v units", rep.Protected.Metric)
	}
}

func TestLabHotRow(t *testing.T) {
	runLab(t, "hot-row", 0.075)
}

func TestLabStampede(t *testing.T) {
	rep := runLab(t, "stampede", 0.25)
	// Concurrent misses share one load per cold key (three keys in a row,
	// 200 reads each: at most a handful of loads per 1,000 reads).
	if rep.Protected.Metric > 10 {
		t.Errorf("protected run: %v database loads per 1,000 cold reads", rep.Protected.Metric)
	}
}

func TestLabStaleCache(t *testing.T) {
	if testing.Short() {
		t.Skip("watches the item page for seconds per run")
	}
	rep := runLab(t, "stale-cache", 0.25)
	// The second delete comes --double-delete-delay after the update, so
	// the old price cannot be served much longer than that.
	if rep.Protected.Metric > 1 {
		t.Errorf("protected run served the old price for %vs", rep.Protected.Metric)
	}
}
