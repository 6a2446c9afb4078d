//go:build unix

package testenv

import (
	"os"
	"sync"
	"syscall"
	"testing"
)

// StallRedisClusterNode stops (SIGSTOP) the private cluster's node at addr,
// so it keeps its connections open and answers nothing, as a master that
// hangs does, and returns resume, which sends SIGCONT; resume also runs
// when the test ends, and a second call is a no-op. Only this process's own
// cluster is stalled: with SECKILL_TEST_REDIS_CLUSTER_ADDRS set the test is
// skipped, since that cluster may be shared.
func StallRedisClusterNode(t testing.TB, addr string) (resume func()) {
	t.Helper()
	if os.Getenv(RedisClusterAddrsVar) != "" {
		t.Skipf("testenv: %s names a cluster this test must not stall", RedisClusterAddrsVar)
	}
	RedisClusterAddrs(t)
	clusterMu.Lock()
	var p *os.Process
	for i, a := range cluster.addrs {
		if a == addr {
			p = cluster.cmds[i].Process
		}
	}
	clusterMu.Unlock()
	if p == nil {
		t.Fatalf("testenv: no node of the private cluster listens on %s", addr)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("testenv: stall %s: %v", addr, err)
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := p.Signal(syscall.SIGCONT); err != nil {
				t.Errorf("testenv: resume %s: %v", addr, err)
			}
		})
	}
	t.Cleanup(resume)
	return resume
}
