package lab

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"seckill/app/config"
)

// runLabForTest runs one lab, both modes, at a small scale, on the real
// Redis and MariaDB when SECKILL_TEST_REDIS_ADDR and SECKILL_TEST_MYSQL_DSN
// name them (each run in a prefix and a database of its own) and on
// embedded stand-ins otherwise, and fails unless the protected run beats
// the unprotected one.
func runLabForTest(t *testing.T, name string, scale float64) Report {
	t.Helper()
	l, ok := Find(name)
	if !ok {
		t.Fatalf("lab %s is not registered", name)
	}
	base := config.Default()
	base.HTTPAddr = "127.0.0.1:0"
	base.RedisAddr = os.Getenv("SECKILL_TEST_REDIS_ADDR")
	base.MySQLDSN = os.Getenv("SECKILL_TEST_MYSQL_DSN")
	var out bytes.Buffer
	env := &Env{Base: base, Out: &out, Scale: scale}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := RunOne(ctx, env, l, &out)
	t.Logf("lab %s:\n%s", name, out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Holds() {
		t.Fatalf("%s does not hold", rep.Line())
	}
	return rep
}

func TestLabLostOrders(t *testing.T) {
	rep := runLabForTest(t, "lost-orders", 0.3)
	if rep.Protected.Metric != 0 {
		t.Errorf("the outbox lost %v accepted orders", rep.Protected.Metric)
	}
}

func TestLabDuplicateOrders(t *testing.T) {
	rep := runLabForTest(t, "duplicate-orders", 0.2)
	if rep.Protected.Metric != 0 {
		t.Errorf("the idempotent worker recorded %v duplicate orders", rep.Protected.Metric)
	}
}

func TestLabHotKey(t *testing.T) {
	rep := runLabForTest(t, "hot-key", 0.2)
	// Without the shield every purchase is a Redis call.
	if rep.Unprotected.Metric < 0.99 {
		t.Errorf("naive guard: %v Redis calls per purchase, want 1", rep.Unprotected.Metric)
	}
}

func TestLabUnpaidHold(t *testing.T) {
	rep := runLabForTest(t, "unpaid-hold", 0.3)
	if rep.Protected.Metric != 0 {
		t.Errorf("with the payment window %v units stayed held by non-payers", rep.Protected.Metric)
	}
}

func TestLabBreaker(t *testing.T) {
	rep := runLabForTest(t, "breaker", 1)
	// The guarded path answers within its call deadline plus scheduling;
	// the naive one waits out the fault.
	if rep.Unprotected.Metric < float64(breakerStuck.Milliseconds()) {
		t.Errorf("naive ledger: p99 %vms, want the fault's seconds", rep.Unprotected.Metric)
	}
}
