// Package chaos holds seckill's crash tests on real processes. TestMain builds
// the seckill binary once; each scenario then starts real `seckill serve`,
// `seckill worker`, `seckill all` and `seckill broker` processes against a
// private redis-server, the shared MariaDB (or a private mariadbd when the
// database itself is the fault), puts a sale of 1,000 units under load from
// 2,000 distinct buyers, injects one fault in the middle (SIGKILL of a worker,
// an API, the broker or Redis; a MariaDB outage; a Redis Cluster master
// failover or a live slot migration on a private six-node cluster) and
// checks, after a bounded
// settle wait, the invariants the in-process suite in app/tests/e2e checks:
// nothing lost, nothing duplicated, nothing oversold, and the stock accounts
// adding up. It prints a reliability table at the end (docs/RELIABILITY.md).
//
// The tests run only with SECKILL_CHAOS=1 (make chaos); without it they skip,
// so `make test` stays fast. With it, a missing prerequisite (redis-server,
// redis-cli, mariadbd, mariadb-install-db, SECKILL_TEST_MYSQL_DSN) fails the
// scenario that needs it instead of skipping it.
//
// Hard limits kept here: the machine's shared Redis and MariaDB are never
// stopped or flushed (Redis faults use a private redis-server or Redis
// Cluster, the MariaDB fault a private mariadbd, all stopped by pid); load
// goes only to 127.0.0.1; every loop and wait is bounded in count and time.
package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// chaosVar turns the suite on; anything but "1" skips it.
const chaosVar = "SECKILL_CHAOS"

// chaosEnv is the one place the recovery timings live. They are environment
// variables, never flags, because the binary's flag parser (ff with env
// prefix SECKILL) ignores env vars it does not know but rejects unknown
// flags: the same harness then runs both before the recovery machinery
// (SECKILL_REPUBLISH_AFTER, SECKILL_RECONCILE_EVERY, SECKILL_RECOVERY_GRACE
// do not exist yet on this branch) and after it.
var chaosEnv = []string{
	"SECKILL_RELAY_EVERY=200ms",
	"SECKILL_RELAY_AFTER=1s",
	"SECKILL_REPUBLISH_AFTER=5s",
	"SECKILL_RELAY_GIVE_UP=60s",
	"SECKILL_RECONCILE_EVERY=2s",
	"SECKILL_RECOVERY_GRACE=1s",
}

var (
	// binPath is the seckill binary TestMain built, "" when the suite is off.
	binPath string
	// results collects one row per scenario for the closing table.
	results = &reportTable{}
)

// TestMain builds the seckill binary once when the suite is on, runs the
// scenarios and prints the reliability table after them.
func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if os.Getenv(chaosVar) != "1" {
		return m.Run() // every test skips itself with a pointer to make chaos
	}
	dir, err := os.MkdirTemp("", "seckill-chaos-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "seckill")
	start := time.Now()
	// A plain build (no -race): the processes under test should run at the
	// speed they run in production, and the race detector would slow the
	// 2-core machine enough to blur the timings this suite reports.
	build := exec.Command("go", "build", "-o", binPath, "seckill/app/cmd/seckill")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: go build ./app/cmd/seckill:", err)
		return 1
	}
	fmt.Printf("chaos: built %s in %s\n", binPath, time.Since(start).Round(100*time.Millisecond))
	code := m.Run()
	results.print(os.Stdout)
	return code
}

// requireChaos skips the test unless SECKILL_CHAOS=1.
func requireChaos(t *testing.T) {
	t.Helper()
	if os.Getenv(chaosVar) != "1" || binPath == "" {
		t.Skipf("crash tests on real processes are off; run `make chaos` (or set %s=1) to run them", chaosVar)
	}
}

// requireCommand fails (never skips) when a program a scenario needs is
// missing: with SECKILL_CHAOS=1 a green run must mean the scenario ran.
func requireCommand(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s=1 but %s is not installed (Debian: apt-get install redis-server mariadb-server): %v", chaosVar, n, err)
		}
	}
}
