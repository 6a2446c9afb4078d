package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"seckill/infra/testenv"
)

// asMainEnv makes the test binary run main() instead of the tests, so the
// CLI test sees the real exit status and output of the real entry point.
const asMainEnv = "SECKILL_CLI_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		return // main exits; reached only if it returns normally
	}
	code := m.Run()
	testenv.StopRedisCluster() // TestTwoInstancesOnRedisCluster's servers
	os.Exit(code)
}

// runSeckill runs main with args and returns what it printed (stdout and
// stderr together) and its exit status.
func runSeckill(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	// No SECKILL_* setting of the caller's may change what is printed.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SECKILL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, asMainEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	}
	t.Fatalf("seckill %q: %v", args, err)
	return "", 0
}

// subcommands is the tree as main builds it, so a new subcommand is
// checked without editing this test.
func subcommands() []*ffcli.Command { return newRoot(io.Discard, io.Discard).Subcommands }

var flagLine = regexp.MustCompile(`(?m)^\s+(-{1,2})([A-Za-z0-9][A-Za-z0-9_.-]*)`)

// helpFlags returns the flag names a help text lists; it fails on a flag
// printed with one dash, since the docs write two.
func helpFlags(t *testing.T, out string) []string {
	t.Helper()
	var names []string
	for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
		if m[1] != "--" {
			t.Errorf("flag %s%s is printed with one dash; the docs write --%s", m[1], m[2], m[2])
		}
		names = append(names, m[2])
	}
	sort.Strings(names)
	return names
}

func TestRootUsageOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		exit int
	}{
		{nil, exitUsage}, // a subcommand is required
		{[]string{"help"}, exitOK},
		{[]string{"--help"}, exitOK},
		{[]string{"-h"}, exitOK},
	} {
		out, code := runSeckill(t, tc.args...)
		if code != tc.exit {
			t.Errorf("seckill %q: exit %d, want %d\n%s", tc.args, code, tc.exit, out)
		}
		if n := strings.Count(out, "USAGE"); n != 1 {
			t.Errorf("seckill %q: usage printed %d times, want once\n%s", tc.args, n, out)
		}
		for _, sub := range subcommands() {
			if !regexp.MustCompile(`(?m)^  ` + sub.Name + `\s`).MatchString(out) {
				t.Errorf("seckill %q does not list subcommand %s\n%s", tc.args, sub.Name, out)
			}
		}
		if strings.Contains(out, "unknown subcommand") {
			t.Errorf("seckill %q: %s", tc.args, out)
		}
	}
}

// Each subcommand's help, both ways of asking, prints its usage once with
// exactly the flags of its own flag set.
func TestSubcommandHelpListsOnlyItsOwnFlags(t *testing.T) {
	t.Parallel()
	for _, sub := range subcommands() {
		var want []string
		sub.FlagSet.VisitAll(func(f *flag.Flag) { want = append(want, f.Name) })
		sort.Strings(want)
		for _, args := range [][]string{{sub.Name, "--help"}, {"help", sub.Name}} {
			out, code := runSeckill(t, args...)
			if code != exitOK {
				t.Errorf("seckill %q: exit %d, want 0\n%s", args, code, out)
			}
			if n := strings.Count(out, "USAGE"); n != 1 {
				t.Errorf("seckill %q: usage printed %d times, want once\n%s", args, n, out)
			}
			if got := helpFlags(t, out); !slices.Equal(got, want) {
				t.Errorf("seckill %q lists flags\n  %q\nwant its own\n  %q", args, got, want)
			}
		}
	}
}

// migrate reads only where the database is and how to log.
func TestMigrateHelpIsShort(t *testing.T) {
	t.Parallel()
	out, _ := runSeckill(t, "migrate", "--help")
	if got, want := helpFlags(t, out), []string{"log-format", "log-level", "mysql-dsn", "sqlite-path"}; !slices.Equal(got, want) {
		t.Errorf("seckill migrate --help lists %q, want %q", got, want)
	}
}

// The help does not claim a default that the text contradicts.
func TestSeedDemoShowsNoFalseDefault(t *testing.T) {
	t.Parallel()
	out, _ := runSeckill(t, "all", "--help")
	i := strings.Index(out, "\n  --seed-demo")
	if i < 0 {
		t.Fatalf("no --seed-demo in\n%s", out)
	}
	entry, _, _ := strings.Cut(out[i+1:], "\n  --")
	if strings.Contains(entry, "(default") || !strings.Contains(entry, "embedded database") {
		t.Errorf("--seed-demo entry: %q", entry)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"no-such-subcommand"},
		{"help", "no-such-subcommand"},
		{"all", "--no-such-flag"},
		{"migrate", "--redis-addr", "x"}, // not a migrate flag
		{"migrate", "extra-argument"},
		{"all", "--log-level", "loud"},
	} {
		out, code := runSeckill(t, args...)
		if code != exitUsage {
			t.Errorf("seckill %q: exit %d, want 2\n%s", args, code, out)
		}
		if n := strings.Count(out, "USAGE"); n > 1 {
			t.Errorf("seckill %q: usage printed %d times\n%s", args, n, out)
		}
	}
}

// TestPublishedSecretsAreRefusedAtStart: serve with an admin token or token
// secret published in the repository exits non-zero within 10 s, naming
// the variable and --dev; with SECKILL_DEV=1 the same settings pass the
// check (and go on to fail for the missing backends, a different error).
func TestPublishedSecretsAreRefusedAtStart(t *testing.T) {
	for _, c := range []struct{ env, name string }{
		{"SECKILL_ADMIN_TOKEN=change-me-admin-token-0001", "SECKILL_ADMIN_TOKEN"},
		{"SECKILL_TOKEN_SECRET=change-me-token-secret-0001", "SECKILL_TOKEN_SECRET"},
		{"SECKILL_ADMIN_TOKEN=k6-admin-token-0000000001", "SECKILL_ADMIN_TOKEN"},
	} {
		for _, dev := range []bool{false, true} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			cmd := exec.CommandContext(ctx, os.Args[0], "serve")
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "SECKILL_") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			// Unreachable backends: nothing may be dialled before the check.
			cmd.Env = append(cmd.Env, asMainEnv+"=1", c.env, "SECKILL_HTTP_ADDR=127.0.0.1:0",
				"SECKILL_MYSQL_DSN=root@tcp(127.0.0.1:1)/none", "SECKILL_REDIS_ADDR=127.0.0.1:1", "SECKILL_KAFKA_BROKERS=127.0.0.1:1")
			if dev {
				cmd.Env = append(cmd.Env, "SECKILL_DEV=1")
			}
			out, err := cmd.CombinedOutput()
			cancel()
			if dev {
				// Past the check it dials the backends, however long that
				// takes; only the refusal matters here.
				if strings.Contains(string(out), "published in the seckill repository") {
					t.Errorf("%s with SECKILL_DEV=1 was still refused:\n%s", c.env, out)
				}
				continue
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Fatalf("%s: still running after 10 s:\n%s", c.env, out)
			}
			if err == nil {
				t.Fatalf("%s: exited 0:\n%s", c.env, out)
			}
			if !strings.Contains(string(out), c.name) || !strings.Contains(string(out), "--dev") {
				t.Errorf("%s: output does not name %s and --dev:\n%s", c.env, c.name, out)
			}
		}
	}
}
