package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/infra/testenv"
)

// Private Redis Cluster for the failover and reshard scenarios: three
// masters and three replicas, every node a proc of the stack (stopped by
// pid), none persisting anything, so a failover keeps exactly what the
// replica had received when its master died.
const (
	clusterMasters = 3
	clusterNodes   = 2 * clusterMasters
	// clusterNodeTimeout is how long a silent master stays up in the
	// others' eyes. Short, so the failover lands within the sale; not
	// shorter, because on the shared 2-core machine a node starved of CPU
	// for a second must not be failed over by mistake.
	clusterNodeTimeout = 2 * time.Second
)

// redisCluster is the scenario's private cluster.
type redisCluster struct {
	nodes []*proc
	addrs []string // addrs[i] is nodes[i]'s client address
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, masterID string
	master, failed     bool
	slots              [][2]int
	// open lists the node's slots in migration, as CLUSTER NODES prints
	// them on the node's own line: "[<slot>->-<target id>]" (migrating)
	// or "[<slot>-<-<source id>]" (importing).
	open []string
}

// serves reports whether the node's slot ranges hold slot.
func (n clusterNode) serves(slot int) bool {
	for _, r := range n.slots {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

// startRedisCluster starts six redis-servers on free loopback ports (each
// with its own directory, and its cluster bus port, port+10000, free too),
// joins them with redis-cli --cluster create --cluster-replicas 1, waits
// until every node reports cluster_state:ok and every replica is in sync,
// and points the scenario's seckill processes at all six nodes.
func (s *stack) startRedisCluster() {
	s.t.Helper()
	ports, err := testenv.FreeClusterPorts(clusterNodes)
	if err != nil {
		s.t.Fatal(err)
	}
	c := &redisCluster{}
	for i, port := range ports {
		dir := filepath.Join(s.dir, "redis", strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			s.t.Fatal(err)
		}
		p := s.add(&proc{name: fmt.Sprintf("redis-%d", i), path: "redis-server", env: cleanEnv(), dir: s.dir, args: []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--daemonize", "no",
			"--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout.Milliseconds())),
			// A replica may always stand in for its dead master, however
			// long since it last heard from it: the scenario is about what
			// the promoted replica lacks, not about refusing to promote it.
			"--cluster-replica-validity-factor", "0",
		}})
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := p.start(); err != nil {
			s.t.Fatal(err)
		}
		if err := waitRedis(p, addr, readyTimeout); err != nil {
			s.t.Fatal(err)
		}
		c.nodes, c.addrs = append(c.nodes, p), append(c.addrs, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		s.t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitHealthy(ctx, nil); err != nil {
		s.t.Fatal(err)
	}
	s.cluster = c
	s.base = append(s.base, "SECKILL_REDIS_ADDR="+strings.Join(c.addrs, ","))
}

// live returns the addresses of the nodes whose process runs.
func (c *redisCluster) live() []string {
	var out []string
	for i, p := range c.nodes {
		if p.running() {
			out = append(out, c.addrs[i])
		}
	}
	return out
}

// waitHealthy waits until every running node reports cluster_state:ok and
// three masters holding slots, every running replica's link to its master
// is up and in sync, and, when ok is not nil, ok accepts the topology too.
func (c *redisCluster) waitHealthy(ctx context.Context, ok func([]clusterNode) error) error {
	live := c.live()
	var last error
	for {
		last = func() error {
			for _, addr := range live {
				if err := nodeHealthy(ctx, addr); err != nil {
					return err
				}
			}
			nodes, err := readClusterNodes(ctx, live[0])
			if err != nil {
				return err
			}
			if ok != nil {
				return ok(nodes)
			}
			return nil
		}()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis cluster %v not healthy: %w", live, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// nodeHealthy checks one node: cluster_state:ok, three masters with slots,
// and, on a replica, a synced link to its master.
func nodeHealthy(ctx context.Context, addr string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	info, err := rdb.ClusterInfo(ctx).Result()
	if err != nil {
		return fmt.Errorf("%s: CLUSTER INFO: %w", addr, err)
	}
	if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, fmt.Sprintf("cluster_size:%d\r", clusterMasters)) {
		f := strings.Fields(info)
		return fmt.Errorf("%s: %s", addr, strings.Join(f[:min(4, len(f))], " "))
	}
	repl, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("%s: INFO replication: %w", addr, err)
	}
	if strings.Contains(repl, "role:slave") &&
		(!strings.Contains(repl, "master_link_status:up") || !strings.Contains(repl, "master_sync_in_progress:0")) {
		return fmt.Errorf("%s: replica not in sync with its master", addr)
	}
	return nil
}

// readClusterNodes reads CLUSTER NODES from the node at addr.
func readClusterNodes(ctx context.Context, addr string) ([]clusterNode, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	raw, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER NODES: %w", addr, err)
	}
	var out []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		// <id> <ip:port@bus> <flags> <master id|-> <ping> <pong> <epoch> <link> <slot>...
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		n := clusterNode{id: f[0], masterID: f[3]}
		n.addr, _, _ = strings.Cut(f[1], "@")
		flags := "," + f[2] + ","
		n.master = strings.Contains(flags, ",master,")
		n.failed = strings.Contains(flags, ",fail,") || strings.Contains(flags, ",fail?,")
		for _, sl := range f[8:] {
			if strings.HasPrefix(sl, "[") { // a slot being migrated
				n.open = append(n.open, sl)
				continue
			}
			lo, hi, found := strings.Cut(sl, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if found {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s: CLUSTER NODES slot %q", addr, sl)
			}
			n.slots = append(n.slots, [2]int{a, b})
		}
		out = append(out, n)
	}
	return out, nil
}

// masterOf returns the live master serving slot and its live replica in
// one node's view of the cluster.
func masterOf(nodes []clusterNode, slot int) (master, replica clusterNode, err error) {
	for _, n := range nodes {
		if n.master && !n.failed && n.serves(slot) {
			master = n
		}
	}
	if master.id == "" {
		return master, replica, fmt.Errorf("no live master serves slot %d", slot)
	}
	for _, n := range nodes {
		if !n.master && n.masterID == master.id && !n.failed {
			replica = n
		}
	}
	if replica.id == "" {
		return master, replica, fmt.Errorf("master %s (slot %d) has no live replica", master.addr, slot)
	}
	return master, replica, nil
}

// keySlot asks a running node for key's cluster slot.
func (c *redisCluster) keySlot(ctx context.Context, key string) (int, error) {
	rdb := redis.NewClient(&redis.Options{Addr: c.live()[0]})
	defer rdb.Close()
	slot, err := rdb.ClusterKeySlot(ctx, key).Result()
	return int(slot), err
}

// failoverResult is what one failover did.
type failoverResult struct {
	killed, promoted string    // the dead master's and the promoted replica's addresses
	healed           time.Time // the replica serves the slot and every node says ok
	// lostBytes is how much of the master's replication stream the
	// promoted replica never received: the master's offset read just
	// before the kill minus the offset the replica was promoted at.
	lostBytes int64
}

// failover checks that key exists on the master serving its slot, cuts
// that master's replica off for gap (the replica is SIGSTOPped and the
// master drops its link, so every write the master acknowledges in the gap
// exists on the master only, as with a lagging replica), then SIGKILLs the
// master, resumes the replica and waits until the replica has been
// promoted: it serves the slot and every surviving node reports
// cluster_state:ok. The dead master is not restarted.
func (c *redisCluster) failover(ctx context.Context, key string, gap time.Duration) (failoverResult, error) {
	var res failoverResult
	slot, err := c.keySlot(ctx, key)
	if err != nil {
		return res, fmt.Errorf("CLUSTER KEYSLOT %s: %w", key, err)
	}
	nodes, err := readClusterNodes(ctx, c.live()[0])
	if err != nil {
		return res, err
	}
	master, replica, err := masterOf(nodes, slot)
	if err != nil {
		return res, err
	}
	mp, rp := c.proc(master.addr), c.proc(replica.addr)
	if mp == nil || rp == nil {
		return res, fmt.Errorf("master %s or replica %s of slot %d is not one of the scenario's nodes %v", master.addr, replica.addr, slot, c.addrs)
	}
	res.killed, res.promoted = master.addr, replica.addr
	m := redis.NewClient(&redis.Options{Addr: master.addr, MaxRetries: -1})
	defer m.Close()
	// The key must really live there: otherwise the kill would test a
	// failover that never touches the sale.
	if n, err := m.Exists(ctx, key).Result(); err != nil || n != 1 {
		return res, fmt.Errorf("%s is not on %s, the master of its slot %d (EXISTS: %d, %v)", key, master.addr, slot, n, err) //nolint:errorlint // err is nil when EXISTS answered 0
	}
	if gap > 0 {
		// Stopped first, so the replica cannot reconnect (and resync)
		// until the master is gone; shorter than the node timeout, so
		// nobody fails the replica over in the meantime.
		rp.signal(syscall.SIGSTOP)
		defer rp.signal(syscall.SIGCONT)
		if err := m.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
			return res, fmt.Errorf("drop the replica link of %s: %w", master.addr, err)
		}
		time.Sleep(gap)
	}
	last, err := replOffset(ctx, m, "master_repl_offset")
	if err != nil {
		return res, err
	}
	if err := mp.kill(); err != nil {
		return res, err
	}
	rp.signal(syscall.SIGCONT)
	err = c.waitHealthy(ctx, func(nodes []clusterNode) error {
		for _, n := range nodes {
			if n.id == replica.id {
				if n.master && n.serves(slot) {
					return nil
				}
				return fmt.Errorf("replica %s not yet promoted to serve slot %d", replica.addr, slot)
			}
		}
		return errors.New("the replica vanished from CLUSTER NODES")
	})
	res.healed = time.Now()
	if err != nil {
		return res, err
	}
	r := redis.NewClient(&redis.Options{Addr: replica.addr})
	defer r.Close()
	// second_repl_offset is the offset the replica was promoted at, plus 1.
	promotedAt, err := replOffset(ctx, r, "second_repl_offset")
	if err != nil {
		return res, err
	}
	res.lostBytes = max(0, last-(promotedAt-1))
	return res, nil
}

// proc returns the node process listening on addr, or nil.
func (c *redisCluster) proc(addr string) *proc {
	for i, a := range c.addrs {
		if a == addr {
			return c.nodes[i]
		}
	}
	return nil
}

// replOffset reads one integer field of a node's INFO replication.
func replOffset(ctx context.Context, rdb *redis.Client, field string) (int64, error) {
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return 0, fmt.Errorf("INFO replication: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO replication has no %s", field)
}

// reshardResult is what one slot migration did.
type reshardResult struct {
	slot     int
	from, to string    // the source and target masters' addresses
	keys     int       // keys MIGRATEd, one per call
	migrated time.Time // the last key left the source
	healed   time.Time // every node sees the target own the slot and none has it open
}

// reshard moves key's slot from the master serving it to another master
// while the cluster keeps serving, as redis-cli --cluster reshard does
// (which cannot be told to move one given slot): CLUSTER SETSLOT IMPORTING
// on the target and MIGRATING on the source, then MIGRATE of the source's
// keys in that slot one at a time with pause after each, so clients meet
// the half-migrated slot (keys split between the two nodes) for
// pause × keys, then CLUSTER SETSLOT NODE on the target, the source and
// the other masters. It returns when every running node reports
// cluster_state:ok, sees the target serving the slot and has no slot in
// migration. It never kills or restarts a node.
func (c *redisCluster) reshard(ctx context.Context, key string, pause time.Duration) (reshardResult, error) {
	var res reshardResult
	slot, err := c.keySlot(ctx, key)
	if err != nil {
		return res, fmt.Errorf("CLUSTER KEYSLOT %s: %w", key, err)
	}
	res.slot = slot
	nodes, err := readClusterNodes(ctx, c.live()[0])
	if err != nil {
		return res, err
	}
	src, _, err := masterOf(nodes, slot)
	if err != nil {
		return res, err
	}
	var dst clusterNode
	for _, n := range nodes {
		if n.master && !n.failed && n.id != src.id && len(n.slots) > 0 {
			dst = n
			break
		}
	}
	if dst.id == "" {
		return res, fmt.Errorf("no other live master to move slot %d to", slot)
	}
	res.from, res.to = src.addr, dst.addr
	from := redis.NewClient(&redis.Options{Addr: src.addr, MaxRetries: -1})
	defer from.Close()
	to := redis.NewClient(&redis.Options{Addr: dst.addr, MaxRetries: -1})
	defer to.Close()
	// The key must really live there: otherwise the migration would test
	// a slot the sale does not use.
	if n, err := from.Exists(ctx, key).Result(); err != nil || n != 1 {
		return res, fmt.Errorf("%s is not on %s, the master of its slot %d (EXISTS: %d, %v)", key, src.addr, slot, n, err) //nolint:errorlint // err is nil when EXISTS answered 0
	}
	// Importing first, as redis-cli does: a client sent on by the source's
	// ASK must find the target ready to take it.
	if err := to.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", src.id).Err(); err != nil {
		return res, fmt.Errorf("%s: SETSLOT %d IMPORTING: %w", dst.addr, slot, err)
	}
	if err := from.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.id).Err(); err != nil {
		return res, fmt.Errorf("%s: SETSLOT %d MIGRATING: %w", src.addr, slot, err)
	}
	host, port, _ := strings.Cut(dst.addr, ":")
	for {
		// A key the source lacks is created on the target (the source
		// answers ASK for it), so the source's keys only ever dwindle.
		keys, err := from.ClusterGetKeysInSlot(ctx, slot, 1).Result()
		if err != nil {
			return res, fmt.Errorf("%s: GETKEYSINSLOT %d: %w", src.addr, slot, err)
		}
		if len(keys) == 0 {
			break
		}
		if err := from.Do(ctx, "MIGRATE", host, port, "", 0, 5000, "KEYS", keys[0]).Err(); err != nil {
			return res, fmt.Errorf("%s: MIGRATE %s to %s: %w", src.addr, keys[0], dst.addr, err)
		}
		res.keys++
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("slot %d: %d keys moved: %w", slot, res.keys, ctx.Err())
		case <-time.After(pause):
		}
	}
	res.migrated = time.Now()
	// The target first, so it owns the slot before the source lets go and
	// starts answering MOVED; then the others, which would otherwise learn
	// it only through gossip.
	order := []string{dst.addr, src.addr}
	for _, n := range nodes {
		if n.master && !n.failed && n.id != src.id && n.id != dst.id {
			order = append(order, n.addr)
		}
	}
	for _, addr := range order {
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		err := rdb.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dst.id).Err()
		rdb.Close()
		if err != nil {
			return res, fmt.Errorf("%s: SETSLOT %d NODE %s: %w", addr, slot, dst.id, err)
		}
	}
	err = c.waitHealthy(ctx, func([]clusterNode) error {
		for _, addr := range c.live() {
			nodes, err := readClusterNodes(ctx, addr)
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if len(n.open) > 0 {
					return fmt.Errorf("%s: %s still has %v open", addr, n.addr, n.open)
				}
				if n.serves(slot) != (n.id == dst.id) {
					return fmt.Errorf("%s: slot %d not yet owned by %s alone (%s serves it: %v)", addr, slot, dst.addr, n.addr, n.serves(slot))
				}
			}
		}
		return nil
	})
	res.healed = time.Now()
	return res, err
}

// ledgerBreaker is one API's redis-ledger circuit breaker counters, read
// from its /metrics.
type ledgerBreaker struct{ failures, rejected, opened float64 }

// ledgerBreakers reads the redis-ledger breaker counters of every running
// API; an API that does not answer reads as zeros.
func (s *stack) ledgerBreakers() map[string]ledgerBreaker {
	s.mu.Lock()
	apis := append([]*proc(nil), s.apis...)
	s.mu.Unlock()
	out := map[string]ledgerBreaker{}
	for _, p := range apis {
		if !p.running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := call(ctx, "GET", p.url+"/metrics", "", nil)
		cancel()
		if err != nil || r.status != 200 {
			continue
		}
		var b ledgerBreaker
		for _, line := range strings.Split(string(r.raw), "\n") {
			name, val, ok := strings.Cut(line, `{backend="redis-ledger"} `)
			if !ok {
				continue
			}
			f, _ := strconv.ParseFloat(strings.TrimSpace(val), 64)
			switch name {
			case "seckill_breaker_failures_total":
				b.failures = f
			case "seckill_breaker_rejected_total":
				b.rejected = f
			case "seckill_breaker_opened_total":
				b.opened = f
			}
		}
		out[p.name] = b
	}
	return out
}

// ledgerBreakersSince describes, per API, what its ledger breaker counted
// since before (a ledgerBreakers reading), and returns how many times they
// opened in all.
func (s *stack) ledgerBreakersSince(before map[string]ledgerBreaker) (string, int) {
	now := s.ledgerBreakers()
	names := make([]string, 0, len(now))
	for n := range now {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	opened := 0
	for _, n := range names {
		a, b := before[n], now[n]
		opened += int(b.opened - a.opened)
		parts = append(parts, fmt.Sprintf("%s: %.0f failures, opened %.0f times, %.0f calls refused while open", n, b.failures-a.failures, b.opened-a.opened, b.rejected-a.rejected))
	}
	return strings.Join(parts, "; "), opened
}
