package chaos

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// scenario is one crash test: how to lay out the processes and which fault
// to inject once a fraction of the stock has sold.
type scenario struct {
	name     string
	sharedDB bool // the shared MariaDB (fresh database); false: a private mariadbd
	aof      bool // the private redis-server persists with an AOF
	// cluster: a private Redis Cluster (3 masters, 3 replicas) instead of
	// the private redis-server.
	cluster bool
	buckets int // the sale's stock_buckets; 0: the default (one)
	// salesGoOn: once the fault is over the sale must serve everyone, so
	// no buyer may give up after maxAttempts refusals and the load must
	// reach every buyer within its time limit.
	salesGoOn bool
	// allConfirmed: the fault must not fail a single accepted order (only
	// a process died; every backend kept its data).
	allConfirmed bool
	pace         int     // buyers started per second; 0: as fast as the concurrency allows
	faultAt      float64 // fraction of the stock accepted before the fault
	// buyers is the crowd; 0: saleBuyers. tail keeps new buyers coming at
	// tailPace a second for that long after the sale is first seen sold
	// out (see load.tail).
	buyers   int
	tail     time.Duration
	tailPace int
	setup    func(s *stack)
	// fault injects the fault and returns when it ended: when the
	// restarted process or server is ready again, or at the kill when
	// nothing is restarted.
	fault func(s *stack) time.Time
}

// splitLayout starts `seckill broker`, then apis `seckill serve` and workers
// `seckill worker` processes (all workers in one consumer group).
func splitLayout(apis, workers int) func(s *stack) {
	return func(s *stack) {
		s.startBroker()
		for i := range apis {
			s.seckill("serve", fmt.Sprintf("api-%d", i+1))
		}
		for i := range workers {
			s.seckill("worker", fmt.Sprintf("worker-%d", i+1))
		}
	}
}

// killOnly SIGKILLs the process p picks and leaves it dead; the fault ends
// at the kill.
func killOnly(p func(s *stack) *proc) func(s *stack) time.Time {
	return func(s *stack) time.Time {
		if err := p(s).kill(); err != nil {
			s.t.Fatal(err)
		}
		return time.Now()
	}
}

// replicaGap is how long the failover scenario cuts the doomed master's
// replica off before the kill: at 250 buyers a second about 260 purchases
// are accepted in that time, a third of them (about 80) on the master's
// bucket, and the promoted replica has none of those. Below the node
// timeout, so the stopped replica is not itself taken for dead.
const replicaGap = time.Second

// reshardPause is how long the reshard scenario waits after moving each
// key of bucket 0's slot: bucket 0 has a handful of keys (sale, buyers,
// pending, outbox and a few more), so purchases meet the slot half
// migrated, its keys split between two masters, for a few seconds at 250
// buyers a second, not for the microseconds an operator's redis-cli takes.
const reshardPause = 500 * time.Millisecond

// rollbackGap is how long the sale goes on between the ledger's snapshot and
// its crash in the rollback scenario: at 250 buyers a second, about 250
// reservations that the restart takes back.
const rollbackGap = time.Second

var scenarios = []scenario{
	{
		name: "worker-sigkill", sharedDB: true, allConfirmed: true, pace: 250, faultAt: 1.0 / 3,
		setup: splitLayout(1, 2),
		// Left dead: the survivor must take over its partitions once the
		// group notices (session timeout) and redo its uncommitted batch.
		fault: killOnly(func(s *stack) *proc { return s.workers[0] }),
	},
	{
		// Unpaced, so the API dies while it accepts at full rate with
		// orders queued in its dispatcher.
		name: "api-sigkill", sharedDB: true, allConfirmed: true, pace: 0, faultAt: 1.0 / 3,
		setup: splitLayout(2, 1),
		// Left dead: orders it accepted but never published sit in the
		// ledger's outbox, and the surviving API's relay must deliver them.
		fault: killOnly(func(s *stack) *proc { return s.apis[0] }),
	},
	{
		name: "redis-restart-aof", sharedDB: true, aof: true, pace: 250, faultAt: 1.0 / 3,
		setup: splitLayout(1, 1),
		fault: func(s *stack) time.Time {
			if err := s.redis.kill(); err != nil {
				s.t.Fatal(err)
			}
			s.restartRedis()
			return time.Now()
		},
	},
	{
		name: "redis-restart-empty", sharedDB: true, pace: 250, faultAt: 1.0 / 3,
		setup: splitLayout(1, 1),
		fault: func(s *stack) time.Time {
			if err := s.redis.kill(); err != nil {
				s.t.Fatal(err)
			}
			s.restartRedis() // no persistence: the ledger is gone
			return time.Now()
		},
	},
	{
		// A slower pace and an earlier fault, so stock is still left when
		// the database comes back and the sale resumes measurably.
		name: "mysql-unreachable", pace: 60, faultAt: 0.2,
		setup: splitLayout(1, 1),
		fault: func(s *stack) time.Time {
			if err := s.mysql.kill(); err != nil {
				s.t.Fatal(err)
			}
			time.Sleep(10 * time.Second)
			s.restartMariaDB(s.mysqlDSN)
			return time.Now()
		},
	},
	{
		name: "broker-restart", sharedDB: true, pace: 250, faultAt: 1.0 / 3,
		setup: splitLayout(1, 1),
		fault: func(s *stack) time.Time {
			// At this load the worker keeps up, so a broker killed at a
			// random instant would usually hold no unconsumed order.
			// Pausing the worker first (a GC pause, a slow database)
			// leaves two seconds of accepted orders in the broker only.
			w := s.workers[0]
			w.signal(syscall.SIGSTOP)
			defer w.signal(syscall.SIGCONT)
			time.Sleep(2 * time.Second)
			if err := s.broker.kill(); err != nil {
				s.t.Fatal(err)
			}
			s.restartBroker() // empty: every message and offset is gone
			w.signal(syscall.SIGCONT)
			return time.Now()
		},
	},
	{
		// Three stock buckets, one per master, so the sale runs on the
		// whole cluster; the master of bucket 0 (the sale's own keys and
		// the repair lock) dies. Replication is asynchronous, and its
		// replica is cut off for the last second first, so the writes the
		// master acknowledged in that second are gone from the promoted
		// replica; the reconciler must find and repair what that broke.
		name: "redis-cluster-failover", sharedDB: true, cluster: true, buckets: 3, salesGoOn: true, pace: 250, faultAt: 1.0 / 3,
		setup: splitLayout(2, 1),
		fault: func(s *stack) time.Time {
			ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
			defer cancel()
			key := fmt.Sprintf("%s:{item:%d}:sale", s.prefix, s.item)
			before := s.load.nAccepted.Load()
			cut := time.Now()
			res, err := s.cluster.failover(ctx, key, replicaGap)
			if err != nil {
				s.t.Fatal(err)
			}
			s.ledgerMayLose(cut, res.healed, 0, "202s of bucket 0 (the dead master's) from its replica's cut-off to the promotion")
			s.t.Logf("replica %s cut off for %s (%d orders accepted meanwhile, on every bucket), then master %s (holds %s) SIGKILLed; "+
				"the replica was promoted %d bytes of replication stream short; cluster_state:ok on every node",
				res.promoted, replicaGap, s.load.nAccepted.Load()-before, res.killed, key, res.lostBytes)
			return res.healed
		},
	},
	{
		// The same cluster and sale as the failover, but nothing dies: an
		// operator moves the slot of bucket 0 (the sale's own keys and the
		// repair lock) to another master while the sale runs. During the
		// move a script whose keys are split between the two nodes is
		// refused (ASK, then TRYAGAIN); the sale must go on through it and
		// after it, and every order must still add up.
		name: "redis-cluster-reshard", sharedDB: true, cluster: true, buckets: 3, salesGoOn: true, pace: 250, faultAt: 1.0 / 3,
		setup: splitLayout(2, 1),
		fault: func(s *stack) time.Time {
			ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
			defer cancel()
			key := fmt.Sprintf("%s:{item:%d}:sale", s.prefix, s.item)
			before, accepted, breakers := s.load.triesNow(), s.load.nAccepted.Load(), s.ledgerBreakers()
			res, err := s.cluster.reshard(ctx, key, reshardPause)
			if err != nil {
				s.t.Fatal(err)
			}
			seen, opened := s.ledgerBreakersSince(breakers)
			s.t.Logf("slot %d (holds %s) moved from %s to %s: %d keys MIGRATEd one at a time, %s apart, the last %s before the end; "+
				"%d orders accepted meanwhile; purchase attempts answered during the move: %s; ledger breakers: %s",
				res.slot, key, res.from, res.to, res.keys, reshardPause, res.healed.Sub(res.migrated).Round(time.Millisecond),
				s.load.nAccepted.Load()-accepted, s.load.triesSince(before), seen)
			// Every node stayed up and answered at once: an open ledger
			// breaker would refuse the purchases of every bucket, those on
			// the untouched masters too, for what is one slot's redirects.
			if opened > 0 {
				s.t.Errorf("the slot move opened a ledger circuit breaker %d times (%s): the cluster's TRYAGAIN/ASK answers were taken for a failing Redis", opened, seen)
			}
			return res.healed
		},
	},
	{
		// The ledger rolls back a second while buyers keep coming: Redis
		// is snapshotted mid-sale (SAVE), a second of sales goes on, then
		// it is SIGKILLed and restarted from the snapshot, as a failover
		// to a lagging replica or an AOF-everysec host crash would leave
		// it. Orders of that second are already on their way to the
		// database; their units are back on sale in the ledger (phantom
		// units). Buyers keep coming for 30 s past the sell-out: no
		// phantom may be sold twice, none after the reconciler's first
		// passes, and the ledger must end agreeing with the database.
		name: "redis-rollback", sharedDB: true, pace: 250, faultAt: 1.0 / 3,
		buyers: 5000, tail: 30 * time.Second, tailPace: 100,
		setup: splitLayout(1, 1),
		fault: func(s *stack) time.Time {
			saved := s.saveRedis()
			time.Sleep(rollbackGap)
			if err := s.redis.kill(); err != nil {
				s.t.Fatal(err)
			}
			s.restartRedis() // loads the snapshot: the last second is gone
			ready := time.Now()
			s.ledgerMayLose(saved, ready, -1, "202s answered between the snapshot and the restart")
			return ready
		},
	},
	{
		// One process with its own embedded broker (no
		// SECKILL_KAFKA_BROKERS), a private Redis that keeps running and
		// the shared MariaDB; restarted with the same settings.
		name: "all-sigkill", sharedDB: true, aof: true, allConfirmed: true, pace: 250, faultAt: 1.0 / 3,
		setup: func(s *stack) { s.seckill("all", "all-1") },
		fault: func(s *stack) time.Time {
			p := s.apis[0]
			if err := p.kill(); err != nil {
				s.t.Fatal(err)
			}
			s.restartSeckill(p)
			return time.Now()
		},
	},
}

// TestChaos runs every scenario in turn (not in parallel: each needs the
// machine's two cores for its own processes and load) and records a row of
// the reliability table for each.
func TestChaos(t *testing.T) {
	requireChaos(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { runScenario(t, sc) })
	}
}

func runScenario(t *testing.T, sc scenario) {
	started := time.Now()
	crowd := saleBuyers
	if sc.buyers > 0 {
		crowd = sc.buyers
	}
	r := row{name: sc.name, buyers: crowd, units: saleStock, note: "setup failed (see the test log)"}
	defer func() {
		r.failed = t.Failed()
		r.elapsed = time.Since(started)
		results.add(r)
	}()
	requireCommand(t, "redis-server")
	if sc.cluster {
		requireCommand(t, "redis-cli")
	}
	if !sc.sharedDB {
		requireCommand(t, "mariadbd", "mariadb-install-db")
	}

	s := newStack(t, sc.name, sc.sharedDB)
	if sc.cluster {
		s.startRedisCluster()
	} else {
		s.startRedis(sc.aof)
	}
	s.buckets = sc.buckets
	if !sc.sharedDB {
		s.startMariaDB()
	}
	sc.setup(s)
	item := s.createSale(saleStock)
	buyers := s.loginAll(crowd)

	l := newLoad(s, item, buyers, sc.pace)
	l.tail, l.tailPace = sc.tail, sc.tailPace
	s.load = l
	go l.run()
	// However the test ends, let the load finish first (it is bounded by
	// loadMaxLength) so no goroutine outlives the scenario's processes.
	defer func() { <-l.done }()
	trigger := int64(float64(saleStock) * sc.faultAt)
	if !l.waitAccepted(trigger, 30*time.Second) {
		r.note = "the load never reached the fault point"
		t.Fatalf("only %d of %d orders accepted before the fault was due; load so far: %s", l.nAccepted.Load(), trigger, l.summary())
	}
	r.note = "the fault could not be injected or repaired (see the test log)"
	faultStart, acceptedBefore := time.Now(), l.nAccepted.Load()
	faultEnd := sc.fault(s)
	t.Logf("fault from %s to %s (%s), %d orders accepted when it began",
		faultStart.Format("15:04:05.000"), faultEnd.Format("15:04:05.000"), faultEnd.Sub(faultStart).Round(time.Millisecond), acceptedBefore)
	select {
	case <-l.done:
	case <-time.After(loadMaxLength + 15*time.Second):
		t.Fatal("the load did not end within its own time limit")
	}
	r.v = s.check(l, saleStock, faultEnd, sc.allConfirmed)
	r.a = s.audit(l, faultEnd, &r.v)
	r.ran = true
	if sc.tail > 0 && r.v.soldDB != saleStock {
		// Buyers kept coming long past the sell-out: every unit must
		// have found one.
		r.v.problem(s, "%d units confirmed of %d, though buyers kept coming for %s past the sell-out", r.v.soldDB, saleStock, sc.tail)
	}
	if sc.salesGoOn {
		l.mu.Lock()
		gaveUp, untried := l.gaveUp, l.untried
		l.mu.Unlock()
		if gaveUp > 0 || untried > 0 {
			r.v.problem(s, "the sale did not go on after the fault: %d buyers gave up after %d refusals each, %d were never tried within %s",
				gaveUp, maxAttempts, untried, loadMaxLength)
		}
	}
}
