package chaos

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// The redis-cluster-node-stall scenario: one master of three hangs (SIGSTOP)
// for stallFor in the middle of a sale whose stock is split in three
// buckets, one per master, and then resumes; it is the master that also
// holds the item's shared cache entry (see stallOneMaster). Nothing fails
// over: the cluster's node timeout is raised first, so the stall is a
// master that keeps its connections open and answers nothing, the failure
// per-master circuit breakers exist for. While it lasts, a probe crowd of
// fresh buyers measures what a buyer sees: at least half must be accepted, and
// the accepted ones answered within 50 ms at the 99th percentile (the
// buyers whose bucket is on the hung master are served from another
// bucket once its breaker has opened). Afterwards the checker finds
// nothing lost, duplicated or oversold, every accepted order confirmed
// (allConfirmed), and the probe's own answers true: every 202 confirmed and
// no buyer told refused holding an order. The lead wires the shared answer
// audit of app/tests/chaos in beside this one when both are merged.

// stallFor is how long the master is stopped.
const stallFor = 5 * time.Second

// stallProbeBuyers is the probe crowd: fresh buyers, each with one attempt,
// spread evenly over the stall.
const stallProbeBuyers = 200

func init() {
	scenarios = append(scenarios, scenario{
		name: "redis-cluster-node-stall", sharedDB: true, cluster: true, buckets: 3, salesGoOn: true, allConfirmed: true,
		// 100 buyers a second, not the other cluster scenarios' 250: the
		// two buckets that still answer hold about 500 units when the
		// stall begins, and at 250 a second (plus the probe) the crowd
		// empties them in about two seconds, after which what the buyers
		// are told is about the stock left, not about the hung master.
		pace: 100, faultAt: 0.25,
		setup: splitLayout(2, 1),
		fault: stallOneMaster,
	})
}

// probeAnswer is one probe buyer's single attempt.
type probeAnswer struct {
	b       buyer
	status  int
	code    string
	message string
	orderID string
	took    time.Duration
	at      time.Duration // when it was sent, from the probe's start
	via     string        // the API instance that answered
	err     error
}

// stallOneMaster stops, for stallFor with the probe running, the master
// that holds the item's entry in the shared item cache (and one of its
// three buckets), checks the probe's figures, and returns once the master
// answers again.
//
// Why that master: every instance reloads the item from that entry each
// --local-cache-ttl, and a reload that waited on the hung master held up
// every purchase arriving meanwhile (infra/localcache now reloads a hot
// entry ahead of its expiry). Stopping bucket 1's master met that key in
// one run in three, so the p99 of the 202s was 107-142 ms or 6 ms by luck;
// this master makes the figure the worst case in every run.
func stallOneMaster(s *stack) time.Time {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	// No failover: every node waits far longer than the stall before it
	// calls a silent master failed.
	for _, addr := range s.cluster.live() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		err := c.ConfigSet(ctx, "cluster-node-timeout", "30000").Err()
		_ = c.Close()
		if err != nil {
			s.t.Fatalf("raise the node timeout on %s: %v", addr, err)
		}
	}
	nodes, err := readClusterNodes(ctx, s.cluster.live()[0])
	if err != nil {
		s.t.Fatal(err)
	}
	// The shared item cache's key for the item (infra/rediscache), which
	// has no hash tag.
	master, slot := s.masterOfKey(ctx, nodes, fmt.Sprintf("%s:item:%d", s.prefix, s.item))
	bucket := -1
	for b := range 3 {
		if m, _ := s.masterOfKey(ctx, nodes, fmt.Sprintf("%s:{%s}:sale", s.prefix, sale.BucketTag(sale.ItemID(s.item), b, 3))); m.addr == master.addr {
			bucket = b
		}
	}
	if bucket < 0 {
		s.t.Fatalf("master %s holds the item's cache key but none of its buckets", master.addr)
	}
	victim := s.cluster.proc(master.addr)
	if victim == nil {
		s.t.Fatalf("no process serves %s", master.addr)
	}
	probe := s.probeBuyers(stallProbeBuyers)
	before, breakers := s.load.triesNow(), s.ledgerBreakers()
	victim.signal(syscall.SIGSTOP)
	answers := s.runProbe(probe, stallFor)
	victim.signal(syscall.SIGCONT)
	c := redis.NewClient(&redis.Options{Addr: master.addr})
	err = c.Ping(ctx).Err()
	_ = c.Close()
	if err != nil {
		s.t.Fatalf("the stalled master %s does not answer after SIGCONT: %v", master.addr, err)
	}
	s.recoverProbe(answers)
	seen, _ := s.ledgerBreakersSince(breakers)
	s.t.Logf("master %s (the item's cache key, slot %d, and bucket %d) SIGSTOPped for %s; load attempts answered meanwhile: %s; ledger breakers: %s",
		master.addr, slot, bucket, stallFor, s.load.triesSince(before), seen)
	s.judgeProbe(answers)
	s.t.Cleanup(func() { s.auditProbe(answers) })
	return time.Now()
}

// masterOfKey names the master serving key, and key's slot.
func (s *stack) masterOfKey(ctx context.Context, nodes []clusterNode, key string) (clusterNode, int) {
	slot, err := s.cluster.keySlot(ctx, key)
	if err != nil {
		s.t.Fatal(err)
	}
	m, _, err := masterOf(nodes, slot)
	if err != nil {
		s.t.Fatal(err)
	}
	return m, slot
}

// probeBuyers logs in n fresh buyers, apart from the load's.
func (s *stack) probeBuyers(n int) []buyer {
	out := make([]buyer, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range out {
		out[i].user = fmt.Sprintf("%s-probe-%04d", s.name, i)
		wg.Add(1)
		sem <- struct{}{}
		go func(b *buyer) {
			defer wg.Done()
			defer func() { <-sem }()
			api, err := s.pickAPI()
			if err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := call(ctx, "POST", api.url+"/api/v1/login", "", map[string]string{"user_id": b.user})
			if err == nil && r.status == 200 {
				b.token = r.str("token")
			}
		}(&out[i])
	}
	wg.Wait()
	for _, b := range out {
		if b.token == "" {
			s.t.Fatalf("probe buyer %s could not log in", b.user)
		}
	}
	return out
}

// runProbe starts the buyers evenly over d, one purchase attempt each, and
// returns their answers once all have one. A 202 is handed to the load, so
// the checker follows the order like any other.
func (s *stack) runProbe(buyers []buyer, d time.Duration) []probeAnswer {
	out := make([]probeAnswer, len(buyers))
	path := fmt.Sprintf("/api/v1/items/%d/purchase", s.item)
	var wg sync.WaitGroup
	t0 := time.Now()
	tick := time.NewTicker(d / time.Duration(len(buyers)))
	defer tick.Stop()
	for i, b := range buyers {
		<-tick.C
		wg.Add(1)
		go func(a *probeAnswer) {
			defer wg.Done()
			a.b = b
			api, err := s.pickAPI()
			if err != nil {
				a.err = err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			a.at, a.via = start.Sub(t0), api.name
			r, err := call(ctx, "POST", api.url+path, b.token, nil)
			a.took, a.err = time.Since(start), err
			a.status, a.code, a.message, a.orderID = r.status, r.str("error"), r.str("message"), r.str("order_id")
			if err == nil && r.status == 202 && a.orderID != "" {
				s.load.accept(accepted{buyer: b, orderID: a.orderID, at: time.Now(), via: api.name})
			}
		}(&out[i])
	}
	wg.Wait()
	return out
}

// recoverProbe does what a buyer whose answer said nothing certain does:
// a probe buyer answered neither 202 nor a refusal (a call sent to the
// stalled master and given up: its outcome is unknown) looks up the order
// they hold, now that the master answers again, and one found is handed to
// the load as learned late, so the checker follows it.
func (s *stack) recoverProbe(answers []probeAnswer) {
	found, unknown := 0, 0
	for _, a := range answers {
		if a.err == nil && (a.status == 202 || probeRefused(a)) {
			continue
		}
		unknown++
		// A buyer retries a 503 (the master's breaker may still be open
		// for a moment after it resumes).
		var held [][2]string
		var err error
		for range 20 {
			if held, err = s.heldOrders(a.b); err == nil {
				break
			}
			time.Sleep(retryPause)
		}
		if err != nil {
			s.t.Errorf("probe buyer %s looks up their order: %v", a.b.user, err)
			continue
		}
		if len(held) > 0 {
			found++
			s.load.accept(accepted{buyer: a.b, orderID: held[0][0], at: time.Now(), via: "probe", recovered: true})
		}
	}
	s.t.Logf("probe: %d answers with an unknown outcome, %d of them turned out accepted", unknown, found)
}

// probeRefused reports whether the answer says nothing was reserved: sold
// out, or a circuit breaker's refusal, which sends nothing.
func probeRefused(a probeAnswer) bool {
	return (a.status == 409 && a.code == "sold_out") ||
		(a.status == 503 && strings.Contains(a.message, "without trying it"))
}

// judgeProbe checks the figures taken during the stall: at least half the
// attempts accepted. It reports the p99 of the accepted ones against the
// 50 ms target without failing on it.
func (s *stack) judgeProbe(answers []probeAnswer) {
	var ok, all []time.Duration
	byAnswer := map[string]int{}
	for _, a := range answers {
		k := "connection error"
		if a.err == nil {
			k = strings.TrimSpace(fmt.Sprintf("%d %s", a.status, a.code))
			all = append(all, a.took)
		}
		byAnswer[k]++
		if a.err == nil && a.status == 202 {
			ok = append(ok, a.took)
		}
	}
	s.t.Logf("probe during the stall: %d buyers, %s; p99 of the 202s %s, p99 of all answers %s; slowest 202s: %s",
		len(answers), describeCounts(byAnswer), p99(ok), p99(all), slowest(answers, 3))
	if 2*len(ok) < len(answers) {
		s.t.Errorf("only %d of %d purchases during the stall were accepted, want at least half", len(ok), len(answers))
	}
	// The 50 ms p99 is a speed target, and speed is judged by figures
	// reported, never by a test that fails on a slow run (the house rule):
	// the figure goes to the log and docs/RELIABILITY.md, not to the verdict.
	verdict := "met"
	if p99(ok) >= 50*time.Millisecond {
		verdict = "MISSED"
	}
	s.t.Logf("p99 of the accepted purchases during the stall: %s; target under 50ms: %s", p99(ok), verdict)
}

// auditProbe checks the probe's answers once the sale has settled: every
// 202 names an order the buyer holds confirmed, and a buyer refused
// (sold out, or a circuit breaker's refusal, which sends nothing) holds no
// order. Other 5xx answers may be unknown outcomes and are not judged.
func (s *stack) auditProbe(answers []probeAnswer) {
	untrue := 0
	for _, a := range answers {
		if a.err != nil {
			continue
		}
		refused := probeRefused(a)
		if a.status != 202 && !refused {
			continue
		}
		held, err := s.heldOrders(a.b)
		if err != nil {
			s.t.Errorf("audit of %s: %v", a.b.user, err)
			continue
		}
		switch {
		case a.status == 202 && (len(held) != 1 || held[0][0] != a.orderID || held[0][1] != "confirmed"):
			untrue++
			s.t.Errorf("probe buyer %s was told 202 %s but holds %v", a.b.user, a.orderID, held)
		case refused && len(held) > 0:
			untrue++
			s.t.Errorf("probe buyer %s was told %d %s but holds %v", a.b.user, a.status, a.code, held)
		}
	}
	s.t.Logf("probe answers audited: %d untrue", untrue)
}

// heldOrders lists the buyer's orders for the sale as [id, status] pairs.
func (s *stack) heldOrders(b buyer) ([][2]string, error) {
	api, err := s.pickAPI()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := call(ctx, "GET", fmt.Sprintf("%s/api/v1/items/%d/orders", api.url, s.item), b.token, nil)
	if err != nil {
		return nil, err
	}
	if r.status != 200 {
		return nil, fmt.Errorf("orders: %d %s", r.status, r.raw)
	}
	list, _ := r.body["orders"].([]any)
	var out [][2]string
	for _, o := range list {
		m, _ := o.(map[string]any)
		id, _ := m["order_id"].(string)
		st, _ := m["status"].(string)
		out = append(out, [2]string{id, st})
	}
	return out, nil
}

// slowest describes the n slowest 202s: when each was sent into the stall,
// how long it took, which instance answered and the bucket of its order
// (where a slow burst sits in time, and on which buckets, says what it
// waited for).
func slowest(answers []probeAnswer, n int) string {
	var ok []probeAnswer
	for _, a := range answers {
		if a.err == nil && a.status == 202 {
			ok = append(ok, a)
		}
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i].took > ok[j].took })
	parts := make([]string, 0, n)
	for _, a := range ok[:min(n, len(ok))] {
		b := -1
		if id, err := sale.ParseOrderID(a.orderID); err == nil {
			b = id.Bucket()
		}
		parts = append(parts, fmt.Sprintf("+%s %s %s bucket %d", a.at.Round(time.Millisecond), a.took.Round(time.Millisecond), a.via, b))
	}
	return strings.Join(parts, "; ")
}

// p99 is the 99th percentile of ds, 0 for none.
func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*99/100)].Round(time.Millisecond)
}

// describeCounts renders counts largest first.
func describeCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
