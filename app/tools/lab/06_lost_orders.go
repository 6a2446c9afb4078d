package lab

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/tools/lab/labhttp"
	"seckill/app/tools/lab/naive"
	"seckill/infra/embedded"
)

// Lab 6: the outbox. A purchase that Redis accepted has its 202; if the
// only record of it is a Kafka message that never got sent, the buyer's
// order never exists. The protected system records it in the ledger's
// outbox in the same step that takes the unit, and the relay sends it
// again once the broker is back.
func init() {
	Register(Lab{
		Number:  6,
		Name:    "lost-orders",
		Summary: "publish straight to Kafka after the Lua step, no outbox, while the broker fails for a while: 202s never confirmed",
		Metric:  "accepted_never_confirmed",
		Better:  LowerIsBetter,
		Run:     runLostOrders,
	})
}

// lostOrdersOutage is how long the broker keeps failing after the second
// wave has bought: past the producer's own retries of the sends queued
// behind each other.
const lostOrdersOutage = 2 * time.Second

// lostOrdersSettle bounds the wait for the naive sends of a wave to end;
// lostOrdersQuiet is how long the producer must have sent nothing before
// the lab calls it done (twice kafka-go's longest backoff, 1 s).
const (
	lostOrdersSettle = 20 * time.Second
	lostOrdersQuiet  = 2 * time.Second
)

// countAccepted counts the 202s among attempts.
func countAccepted(as []labhttp.Attempt) int {
	n := 0
	for _, a := range as {
		if a.Status == 202 {
			n++
		}
	}
	return n
}

// runLostOrders buys in three waves (before, during and after a broker
// outage) and counts the 202s whose order never reached the database.
func runLostOrders(ctx context.Context, env *Env, mode Mode) (Result, error) {
	var direct *naive.DirectPublisher
	sys, c, done, err := bootLab(ctx, env, lostOrdersTweak, lostOrdersSwap(env, mode, &direct))
	if err != nil {
		return Result{}, err
	}
	defer done()
	broker := sys.EmbeddedKafka()
	if broker == nil {
		return Result{}, errors.New("lost-orders fails the broker on purpose and needs the embedded one: leave --kafka-brokers empty")
	}

	n := env.Scaled(100, 20) // buyers per phase
	item, err := c.CreateSale(ctx, "lost-orders", 3*n, 0)
	if err != nil {
		return Result{}, err
	}
	tokens, err := c.LoginAll(ctx, "lost", 3*n)
	if err != nil {
		return Result{}, err
	}
	w := lostOrdersWaves{env: env, c: c, broker: broker, direct: direct, item: item, tokens: tokens, n: n}
	before, during, after := w.buy(ctx)

	all := append(append(append([]labhttp.Attempt{}, before...), during...), after...)
	accepted := countAccepted(all)
	if accepted == 0 {
		return Result{}, fmt.Errorf("no purchase was accepted")
	}
	waitConfirmedCount(ctx, c, item, accepted)
	never, byPhase := neverConfirmed(ctx, c, tokens, all, n)
	st, _ := c.Stats(ctx, item)
	figs := []Figure{
		{"purchases", strconv.Itoa(len(all))},
		{"accepted (202)", strconv.Itoa(accepted)},
		{"accepted during the outage", strconv.Itoa(countAccepted(during))},
		{"confirmed in the database", strconv.FormatInt(st.Num("orders_confirmed"), 10)},
		{"never confirmed: bought before the outage", strconv.Itoa(byPhase[0])},
		{"never confirmed: bought during it", strconv.Itoa(byPhase[1])},
		{"never confirmed: bought just after it", strconv.Itoa(byPhase[2])},
		{"stock left in Redis", strconv.FormatInt(st.Num("stock_left_redis"), 10)},
		{"stock left in the database", strconv.FormatInt(st.Num("stock_left_db"), 10)},
	}
	if direct != nil {
		sent, lost := direct.Counts()
		figs = append(figs, Figure{"direct sends failed", strconv.FormatUint(lost, 10)}, Figure{"direct sends ok", strconv.FormatUint(sent, 10)})
	}
	return Result{Metric: float64(never), Figures: figs}, nil
}

// lostOrdersSwap puts the naive direct publisher, on the bare Kafka
// publisher, in place of the outbox in the unprotected run, and no relay:
// a system that publishes straight to Kafka has no outbox to relay from.
// *direct is set once the system is built, and stays nil in the protected
// run.
func lostOrdersSwap(env *Env, mode Mode, direct **naive.DirectPublisher) func(*bootstrap.Parts) {
	if mode != Unprotected {
		return nil
	}
	return func(p *bootstrap.Parts) {
		*direct = naive.NewDirectPublisher(p.Kafka(), labLogger(env))
		p.OrderQueue, p.Relay = *direct, naive.NoRelay{}
	}
}

// lostOrdersTweak makes the relay look often and soon, and an open Kafka
// breaker let probes through quickly, so the protected run recovers in
// about a second once the broker is back.
func lostOrdersTweak(cfg *config.Config) {
	cfg.RelayEvery = 200 * time.Millisecond
	cfg.RelayAfter = 500 * time.Millisecond
	cfg.BreakerOpenFor = 200 * time.Millisecond
	cfg.KafkaCallTimeout = time.Second
	patientRedis(cfg)
}

// lostOrdersWaves is one run's sale, its buyers (n per wave) and the
// broker it fails; direct is nil in the protected run.
type lostOrdersWaves struct {
	env    *Env
	c      *labhttp.Client
	broker *embedded.Kafka
	direct *naive.DirectPublisher
	item   int64
	tokens []string
	n      int
}

// buy runs the three waves; it returns with the broker up, and every
// naive send of the outage's wave has failed before the broker came back.
func (w lostOrdersWaves) buy(ctx context.Context) (before, during, after []labhttp.Attempt) {
	n := w.n
	w.env.Printf("%d buyers with the broker up", n)
	before = w.c.Spike(ctx, w.item, w.tokens[:n], 32)
	// The naive sends run on goroutines of their own: the outage starts
	// once every one of the first wave's has gone, so none of them meets it.
	if w.direct != nil && !w.settled(ctx, countAccepted(before)) {
		w.env.Printf("not every send of the first wave settled within %s", lostOrdersSettle)
	}
	w.env.Printf("broker fails every produce; %d buyers buy", n)
	w.broker.SetProduceFailure(true)
	during = w.c.Spike(ctx, w.item, w.tokens[n:2*n], 32)
	// Hold the outage past the producer's own retries, and for the naive
	// sends until each one made during it has failed: on a slow machine
	// a send still retrying when the broker comes back would get through,
	// and the figure would depend on the timing.
	sleepCtx(ctx, lostOrdersOutage)
	if w.direct != nil && !w.settled(ctx, countAccepted(before)+countAccepted(during)) {
		w.env.Printf("not every send of the outage failed within %s", lostOrdersSettle)
	}
	if w.direct != nil {
		w.waitProducerQuiet(ctx)
	}
	w.broker.SetProduceFailure(false)
	w.env.Printf("broker back (%d produce requests failed); %d more buyers", w.broker.ProduceFailures(), n)
	after = w.c.Spike(ctx, w.item, w.tokens[2*n:], 32)
	return before, during, after
}

// settled reports whether at least want naive sends have ended, sent or
// lost, within lostOrdersSettle.
func (w lostOrdersWaves) settled(ctx context.Context, want int) bool {
	return waitUntil(ctx, lostOrdersSettle, 20*time.Millisecond, func() bool {
		sent, lost := w.direct.Counts()
		return int(sent+lost) >= want //nolint:gosec // G115: counts of one lab's sends, far below 2^63
	})
}

// waitProducerQuiet returns once the producer has sent no produce request
// for lostOrdersQuiet (or after lostOrdersSettle). A send that gave up on
// its deadline may leave its message in the producer's queue, still
// retrying: the broker comes back only once the producer has stopped
// trying (no produce request for longer than its longest backoff), so
// those messages die too.
func (w lostOrdersWaves) waitProducerQuiet(ctx context.Context) {
	last, since := w.broker.ProduceFailures(), time.Now()
	waitUntil(ctx, lostOrdersSettle, 50*time.Millisecond, func() bool {
		if n := w.broker.ProduceFailures(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) > lostOrdersQuiet
	})
}

// waitConfirmedCount waits until every one of accepted 202s is confirmed,
// or until the count has stood still for a while after the relay had its
// chance.
func waitConfirmedCount(ctx context.Context, c *labhttp.Client, item int64, accepted int) {
	recovered := time.Now()
	last, lastChange := int64(-1), time.Now()
	waitUntil(ctx, 15*time.Second, 100*time.Millisecond, func() bool {
		st, err := c.Stats(ctx, item)
		if err != nil {
			return false
		}
		got := st.Num("orders_confirmed")
		if got != last {
			last, lastChange = got, time.Now()
		}
		return got >= int64(accepted) || (time.Since(recovered) > 3*time.Second && time.Since(lastChange) > 2*time.Second)
	})
}

// neverConfirmed asks for every accepted order, as its buyer would, and
// counts those not confirmed, in all and by the wave (n buyers each:
// before, during, after the outage) that bought them.
func neverConfirmed(ctx context.Context, c *labhttp.Client, tokens []string, all []labhttp.Attempt, n int) (int, [3]int) {
	statuses := make([]string, len(all))
	labhttp.Parallel(len(all), 32, func(i int) {
		if all[i].Status == 202 {
			statuses[i] = c.Order(ctx, tokens[i], all[i].OrderID).Str("status")
		}
	})
	never := 0
	var byPhase [3]int
	for i, a := range all {
		if a.Status == 202 && statuses[i] != "confirmed" {
			never++
			byPhase[min(i/n, 2)]++
		}
	}
	return never, byPhase
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
