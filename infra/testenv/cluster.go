package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisClusterAddrsVar, when set (comma-separated host:port of the masters),
// points the cluster helpers at an existing Redis Cluster instead of starting
// a private one.
const RedisClusterAddrsVar = "SECKILL_TEST_REDIS_CLUSTER_ADDRS"

// clusterMasters is the number of masters a private cluster gets: three is
// the smallest cluster redis-cli --cluster create accepts.
const clusterMasters = 3

// One private cluster per test process: starting three servers and creating
// the cluster takes about a second, so tests share it and isolate themselves
// by key prefix, as they do on the single node.
var (
	clusterOnce sync.Once
	clusterMu   sync.Mutex
	cluster     *privateCluster
	clusterErr  error
	clusterSkip string // why the helper skips (binaries missing, not CI)
)

type privateCluster struct {
	dir   string
	addrs []string
	cmds  []*exec.Cmd
}

// RedisCluster returns a cluster client for a real three-master Redis
// Cluster and a key prefix unique to this test; it deletes the prefix's keys
// on every master when the test ends. The cluster is started once per test
// process (from redis-server and redis-cli on PATH) unless
// SECKILL_TEST_REDIS_CLUSTER_ADDRS names one. Without the binaries the test
// is skipped, or fails under CI=true. Call StopRedisCluster from TestMain to
// stop the servers as the process ends; they also die with the process.
func RedisCluster(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	addrs := RedisClusterAddrs(t)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		return c.Ping(ctx).Err()
	}); err != nil {
		t.Fatalf("testenv: Redis Cluster %v does not answer: %v", addrs, err)
	}
	prefix := "t" + Nonce()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// SCAN sees one node's keys only, so every master is scanned.
		_ = rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			iter := c.Scan(ctx, 0, "*"+prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				c.Del(ctx, iter.Val())
			}
			return iter.Err()
		})
		_ = rdb.Close()
	})
	return rdb, prefix
}

// RedisClusterAddrs returns the masters' addresses of the test cluster
// (starting it if this process has not yet), so a test can talk to one node,
// e.g. to count its commands with NodeCommandCalls.
func RedisClusterAddrs(t testing.TB) []string {
	t.Helper()
	if v := strings.TrimSpace(os.Getenv(RedisClusterAddrsVar)); v != "" {
		var addrs []string
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		return addrs
	}
	clusterOnce.Do(startCluster)
	if clusterSkip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testenv: CI=true but %s; .ci/run must install redis-server and redis-cli", clusterSkip)
		}
		t.Skipf("testenv: %s; install redis-server and redis-cli to run the Redis Cluster tests", clusterSkip)
	}
	if clusterErr != nil {
		t.Fatalf("testenv: starting the private Redis Cluster: %v", clusterErr)
	}
	clusterMu.Lock()
	defer clusterMu.Unlock()
	if cluster == nil {
		t.Fatal("testenv: the private Redis Cluster was stopped (StopRedisCluster) before this test")
	}
	return append([]string(nil), cluster.addrs...)
}

// NodeCommandCalls returns the number of commands one Redis node has served
// since it started (or since CONFIG RESETSTAT), the sum of the calls fields
// of INFO commandstats. The INFO call itself is not counted: Redis counts a
// command after it ran. The count is the node's, so it includes the
// commands of other tests of the process that run at the same time.
func NodeCommandCalls(ctx context.Context, addr string) (int64, error) {
	stats, err := CommandStats(ctx, addr)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, u := range stats {
		total += u.Calls
	}
	return total, nil
}

// CommandUsage is one command's calls and the microseconds Redis spent
// running them, from INFO commandstats.
type CommandUsage struct{ Calls, Usec int64 }

// CommandStats returns INFO commandstats of the Redis at addr by command
// name, in lower case ("evalsha"). The figures are the server's, so they
// include every other client's commands: read a delta, and expect blur.
func CommandStats(ctx context.Context, addr string) (map[string]CommandUsage, error) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]CommandUsage{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		// cmdstat_get:calls=12,usec=34,usec_per_call=2.83,...
		name, fields, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		var u CommandUsage
		for _, f := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			var dst *int64
			switch k {
			case "calls":
				dst = &u.Calls
			case "usec":
				dst = &u.Usec
			default:
				continue
			}
			if *dst, err = strconv.ParseInt(v, 10, 64); err != nil {
				return nil, fmt.Errorf("parse %q: %w", sc.Text(), err)
			}
		}
		out[name] = u
	}
	return out, nil
}

// Main is a TestMain for packages that use RedisCluster: it runs the
// tests, stops this process's private cluster, and exits with the tests'
// status.
func Main(m *testing.M) {
	code := m.Run()
	StopRedisCluster()
	os.Exit(code)
}

// StopRedisCluster stops the private cluster's servers (by their pids) and
// removes their directory. Packages that use RedisCluster call it from
// TestMain after m.Run; calling it when no cluster was started is a no-op.
func StopRedisCluster() {
	clusterMu.Lock()
	defer clusterMu.Unlock()
	if cluster == nil {
		return
	}
	for _, cmd := range cluster.cmds {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	_ = os.RemoveAll(cluster.dir)
	cluster = nil
}

func startCluster() {
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			clusterSkip = bin + " is not on PATH"
			return
		}
	}
	// A free port can be taken by another process between the probe and the
	// server's bind (go test runs packages in parallel), so a failed start
	// is retried on new ports.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var c *privateCluster
		if c, err = tryStartCluster(); err == nil {
			clusterMu.Lock()
			cluster = c
			clusterMu.Unlock()
			return
		}
	}
	clusterErr = err
}

func tryStartCluster() (*privateCluster, error) {
	dir, err := os.MkdirTemp("", "seckill-redis-cluster-")
	if err != nil {
		return nil, err
	}
	c := &privateCluster{dir: dir}
	ok := false
	defer func() {
		if !ok {
			for _, cmd := range c.cmds {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			_ = os.RemoveAll(dir)
		}
	}()
	ports, err := FreeClusterPorts(clusterMasters)
	if err != nil {
		return nil, err
	}
	for i, port := range ports {
		nodeDir := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(nodeDir, 0o700); err != nil {
			return nil, err
		}
		cmd := exec.Command("redis-server",
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(nodeDir, "nodes.conf"),
			// Long, so a node starved of CPU on a loaded CI machine is never
			// marked failed (no replicas: that would stop the cluster).
			"--cluster-node-timeout", "30000",
			"--dir", nodeDir, "--save", "", "--appendonly", "no",
			"--logfile", filepath.Join(nodeDir, "redis.log"),
		)
		setParentDeathSignal(cmd) // the fallback when TestMain does not stop them
		if err := startOnKeptThread(cmd); err != nil {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		c.cmds = append(c.cmds, cmd)
		c.addrs = append(c.addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, addr := range c.addrs {
		if err := waitPing(ctx, addr); err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, strconv.Itoa(i), "redis.log"))
			return nil, fmt.Errorf("redis-server %s did not answer: %w\n%s", addr, err, lastLines(string(log), 10))
		}
	}
	args := append([]string{"--cluster", "create"}, c.addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, lastLines(string(out), 10))
	}
	if err := waitClusterOK(ctx, c.addrs); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// keptThread is an OS thread that lives as long as the process. The kernel's
// parent-death signal fires when the thread that started a child exits, not
// the process, and Go may end a thread (one a goroutine locked and left
// locked); starting every server from this one thread ties the servers'
// lives to the process's.
var (
	keptThreadOnce sync.Once
	keptThreadJobs chan func()
)

func startOnKeptThread(cmd *exec.Cmd) error {
	keptThreadOnce.Do(func() {
		keptThreadJobs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the goroutine never returns
			for job := range keptThreadJobs {
				job()
			}
		}()
	})
	errc := make(chan error, 1)
	keptThreadJobs <- func() { errc <- cmd.Start() }
	return <-errc
}

// FreeClusterPorts picks n loopback ports whose cluster bus ports
// (port+10000) are free too, holding them all until it returns so no two
// picks collide: the ports for a private Redis Cluster (this package's, and
// the chaos tests' own with replicas).
func FreeClusterPorts(n int) ([]int, error) {
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for tries := 0; len(ports) < n && tries < 500; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			_ = l.Close()
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			_ = l.Close()
			continue
		}
		held = append(held, l, bus)
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, errors.New("no free port pairs (port, port+10000) on 127.0.0.1")
	}
	return ports, nil
}

func waitPing(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitClusterOK waits until every node reports cluster_state:ok, i.e. it
// has learned the slot assignment of the whole cluster, so a client's first
// CLUSTER SLOTS, whichever node it asks, routes every key.
func waitClusterOK(ctx context.Context, addrs []string) error {
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			select {
			case <-ctx.Done():
				_ = c.Close()
				return fmt.Errorf("node %s never reached cluster_state:ok: %v %s", addr, err, info) //nolint:errorlint // err is nil when the node answered a state other than ok
			case <-time.After(50 * time.Millisecond):
			}
		}
		_ = c.Close()
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
