package lab

import (
	"bytes"
	"context"
	"testing"
	"time"

	"seckill/app/config"
	"seckill/infra/testenv"
)

// runLab is the one harness for a lab's test (docs/WORKSHOP.md, "How the
// labs are built (to add one)", names it). It runs one registered lab at a
// small scale and fails unless its figures point the way its guide
// predicts. It runs on embedded backends (the workshop's set-up, and what
// make labs runs in CI), then on the real Redis and MySQL of
// infra/testenv (skipped when they are not configured, failed under
// CI=true), as `seckill lab run --redis-addr --mysql-dsn` does; check is
// applied to both reports.
func runLab(t *testing.T, name string, scale float64, check func(t *testing.T, rep Report)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) {
		check(t, runLabOn(t, name, scale, "", ""))
	})
	t.Run("real", func(t *testing.T) {
		check(t, runLabOn(t, name, scale, testenv.RedisAddr(t), testenv.MySQLDSN(t)))
	})
}

func runLabOn(t *testing.T, name string, scale float64, redisAddr, mysqlDSN string) Report {
	t.Helper()
	l, ok := Find(name)
	if !ok {
		t.Fatalf("lab %s is not registered", name)
	}
	base := config.Default()
	base.HTTPAddr = "127.0.0.1:0"
	base.RedisAddr, base.MySQLDSN = redisAddr, mysqlDSN
	var out bytes.Buffer
	env := &Env{Base: base, Out: &out, Scale: scale}
	defer env.Close()
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

// soldExactly checks that the protected run sold the stock and not one
// unit more.
func soldExactly(t *testing.T, rep Report) {
	if rep.Protected.Metric != 0 {
		t.Errorf("protected run oversold %v units", rep.Protected.Metric)
	}
}

// unprotectedIs checks the naive run's figure, which the lab's barrier
// makes the same on every run.
func unprotectedIs(t *testing.T, rep Report, want float64) {
	if rep.Unprotected.Metric != want {
		t.Errorf("unprotected run: %s %v, want %v on every run", rep.Lab.Metric, rep.Unprotected.Metric, want)
	}
}

func TestLabOversell(t *testing.T) {
	runLab(t, "oversell", 0.25, func(t *testing.T, rep Report) {
		soldExactly(t, rep)
		unprotectedIs(t, rep, 75) // 100 buyers, 25 units: all are sold one
	})
}

func TestLabDBOversell(t *testing.T) {
	runLab(t, "db-oversell", 0.25, func(t *testing.T, rep Report) {
		soldExactly(t, rep)
		unprotectedIs(t, rep, 60) // 80 buyers, 20 units: all are sold one
	})
}

func TestLabHotRow(t *testing.T) {
	runLab(t, "hot-row", 0.075, func(*testing.T, Report) {})
}

func TestLabStampede(t *testing.T) {
	runLab(t, "stampede", 0.25, func(t *testing.T, rep Report) {
		// Concurrent misses share one load per cold key (three keys in a
		// row, 250 reads each: at most a handful of loads per 1,000 reads).
		if rep.Protected.Metric > 10 {
			t.Errorf("protected run: %v database loads per 1,000 cold reads", rep.Protected.Metric)
		}
		unprotectedIs(t, rep, 1000) // every cold read loads

	})
}

func TestLabStaleCache(t *testing.T) {
	if testing.Short() {
		t.Skip("watches the item page for seconds per run")
	}
	runLab(t, "stale-cache", 0.25, func(t *testing.T, rep Report) {
		// The second delete comes --double-delete-delay after the update,
		// so the old price cannot be served much longer than that.
		if rep.Protected.Metric > 1 {
			t.Errorf("protected run served the old price for %vs", rep.Protected.Metric)
		}
	})
}
