package kafkaevents_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"seckill/domain/sale"
	"seckill/infra/embedded"
	"seckill/infra/kafkaevents"
)

// cluster starts an embedded broker with no topics and creates them through
// EnsureTopics, the same path the app takes against a real cluster.
func cluster(t *testing.T, topics ...kafkaevents.Topic) (*embedded.Kafka, []string) {
	t.Helper()
	k, err := embedded.StartKafka("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kafkaevents.EnsureTopics(ctx, k.Brokers(), topics...); err != nil {
		t.Fatal(err)
	}
	return k, k.Brokers()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// makeOrders returns n valid orders spread over items 1..items, each with
// its own user, created a millisecond apart.
func makeOrders(n, items int) []sale.Order {
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	out := make([]sale.Order, n)
	for i := range out {
		it := sale.Item{ID: sale.ItemID(i%items + 1), PriceCents: int64(100 + i)}
		out[i] = sale.NewOrder(it, sale.UserID("u"+strconv.Itoa(i)), base.Add(time.Duration(i)*time.Millisecond))
	}
	return out
}

func newPublisher(t *testing.T, brokers []string, topic string, opts kafkaevents.PublisherOptions) *kafkaevents.Publisher {
	t.Helper()
	p := kafkaevents.NewPublisher(brokers, topic, opts)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func newConsumer(t *testing.T, brokers []string, group, topic, dlq string) *kafkaevents.Consumer {
	t.Helper()
	c := kafkaevents.NewConsumer(brokers, group, topic, dlq, kafkaevents.ConsumerOptions{MaxWait: 100 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fetchN fetches in batches of up to limit until it holds n deliveries,
// committing each batch when commit is set.
func fetchN(ctx context.Context, t *testing.T, c *kafkaevents.Consumer, n, limit int, commit bool) []kafkaevents.Delivery {
	t.Helper()
	var all []kafkaevents.Delivery
	for len(all) < n {
		ds, err := c.Fetch(ctx, limit, 50*time.Millisecond)
		if err != nil {
			t.Fatalf("fetch (have %d of %d): %v", len(all), n, err)
		}
		if len(ds) == 0 || len(ds) > limit {
			t.Fatalf("fetch returned %d deliveries with limit %d", len(ds), limit)
		}
		if commit {
			if err := c.Commit(ctx, ds); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, ds...)
	}
	if len(all) != n {
		t.Fatalf("got %d deliveries, want %d", len(all), n)
	}
	return all
}

// expectNothing asserts that no message is waiting for the consumer.
func expectNothing(ctx context.Context, t *testing.T, c *kafkaevents.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	ds, err := c.Fetch(ctx, 10, 0)
	if len(ds) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expected nothing to fetch, got %d deliveries, err %v", len(ds), err)
	}
}

// committedTotal sums the group's committed offsets over the topic's
// partitions; with every partition starting at 0 that is the number of
// messages committed.
func committedTotal(ctx context.Context, t *testing.T, brokers []string, group, topic string, partitions int) int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil || res.Error != nil {
		t.Fatalf("offset fetch: %v %v", err, res.Error)
	}
	var n int64
	for _, p := range res.Topics[topic] {
		if p.CommittedOffset > 0 {
			n += p.CommittedOffset
		}
	}
	return n
}

func TestPublishConsumeRoundTrip(t *testing.T) {
	t.Parallel()
	_, brokers := cluster(t, kafkaevents.Topic{Name: "orders", Partitions: 3})
	ctx := testCtx(t)
	sent := makeOrders(60, 5)
	p := newPublisher(t, brokers, "orders", kafkaevents.PublisherOptions{})
	// Two calls, so batching across calls is exercised too.
	if err := p.Publish(ctx, sent[:25]...); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, sent[25:]...); err != nil {
		t.Fatal(err)
	}
	if p.Published() != int64(len(sent)) || p.Failed() != 0 {
		t.Fatalf("counters published=%d failed=%d, want %d and 0", p.Published(), p.Failed(), len(sent))
	}

	c := newConsumer(t, brokers, "workers", "orders", "")
	got := fetchN(ctx, t, c, len(sent), 16, true)

	want := make(map[sale.OrderID]sale.Order, len(sent))
	for _, o := range sent {
		want[o.ID] = o
	}
	partOf := map[sale.ItemID]int{}
	byItem := map[sale.ItemID][]sale.OrderID{}
	for _, d := range got {
		if d.Err != nil {
			t.Fatalf("delivery %d@%d: %v", d.Partition, d.Offset, d.Err)
		}
		w, ok := want[d.Order.ID]
		if !ok {
			t.Fatalf("unexpected or duplicate order %+v", d.Order)
		}
		if d.Order != w {
			t.Fatalf("order changed in transit:\n got %+v\nwant %+v", d.Order, w)
		}
		delete(want, d.Order.ID)
		if p, seen := partOf[d.Order.ItemID]; seen && p != d.Partition {
			t.Fatalf("item %d on partitions %d and %d; the key must pin it to one", d.Order.ItemID, p, d.Partition)
		}
		partOf[d.Order.ItemID] = d.Partition
		byItem[d.Order.ItemID] = append(byItem[d.Order.ItemID], d.Order.ID)
	}
	// Within an item, orders arrive in the order they were published.
	for item, ids := range byItem {
		var sentIDs []sale.OrderID
		for _, o := range sent {
			if o.ItemID == item {
				sentIDs = append(sentIDs, o.ID)
			}
		}
		if !slices.Equal(ids, sentIDs) {
			t.Fatalf("item %d arrived as %v, sent as %v", item, ids, sentIDs)
		}
	}
	if c.Lag() != 0 {
		t.Fatalf("Lag = %d after consuming everything", c.Lag())
	}
	expectNothing(ctx, t, c)
}

func TestUncommittedRedeliveredCommittedNot(t *testing.T) {
	t.Parallel()
	_, brokers := cluster(t, kafkaevents.Topic{Name: "orders", Partitions: 2})
	ctx := testCtx(t)
	sent := makeOrders(6, 3)
	p := newPublisher(t, brokers, "orders", kafkaevents.PublisherOptions{})
	if err := p.Publish(ctx, sent...); err != nil {
		t.Fatal(err)
	}
	ids := func(ds []kafkaevents.Delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, string(d.Order.ID))
		}
		slices.Sort(out)
		return out
	}
	var wantIDs []string
	for _, o := range sent {
		wantIDs = append(wantIDs, string(o.ID))
	}
	slices.Sort(wantIDs)

	// A member fetches everything but commits nothing, then leaves.
	c1 := kafkaevents.NewConsumer(brokers, "workers", "orders", "", kafkaevents.ConsumerOptions{MaxWait: 100 * time.Millisecond})
	if got := ids(fetchN(ctx, t, c1, len(sent), 4, false)); !slices.Equal(got, wantIDs) {
		t.Fatalf("first member got %v, want %v", got, wantIDs)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}

	// The next member of the group gets all of them again, and commits.
	c2 := kafkaevents.NewConsumer(brokers, "workers", "orders", "", kafkaevents.ConsumerOptions{MaxWait: 100 * time.Millisecond})
	if got := ids(fetchN(ctx, t, c2, len(sent), 4, true)); !slices.Equal(got, wantIDs) {
		t.Fatalf("after an uncommitted close, got %v, want all of %v again", got, wantIDs)
	}
	// Commit is synchronous: the coordinator holds the offsets before the
	// member closes (an asynchronous commit would flush only on Close).
	if n := committedTotal(ctx, t, brokers, "workers", "orders", 2); n != int64(len(sent)) {
		t.Fatalf("committed offsets sum to %d before Close, want %d", n, len(sent))
	}
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}

	// After the commit, a new member sees only what was published since.
	marker := makeOrders(7, 3)[6]
	if err := p.Publish(ctx, marker); err != nil {
		t.Fatal(err)
	}
	c3 := newConsumer(t, brokers, "workers", "orders", "")
	ds := fetchN(ctx, t, c3, 1, 10, false)
	if ds[0].Order.ID != marker.ID {
		t.Fatalf("after commit, first delivery is %s, want the new order %s", ds[0].Order.ID, marker.ID)
	}
	expectNothing(ctx, t, c3)

	// Another group is independent and starts from the first offset.
	other := newConsumer(t, brokers, "auditors", "orders", "")
	fetchN(ctx, t, other, len(sent)+1, 10, false)
}

func TestGarbageBecomesDeliveryErrAndDeadLetters(t *testing.T) {
	t.Parallel()
	_, brokers := cluster(t,
		kafkaevents.Topic{Name: "orders", Partitions: 1},
		kafkaevents.Topic{Name: "orders.dlq", Partitions: 1})
	ctx := testCtx(t)

	good := makeOrders(1, 1)[0]
	p := newPublisher(t, brokers, "orders", kafkaevents.PublisherOptions{})
	raw := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "orders", BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer raw.Close()
	garbage := [][]byte{
		[]byte("not json at all"),
		[]byte(`{"v":2,"order_id":"1-0000000000000000000000000000"}`),
		[]byte(`null`),
		{0xff, 0x00, 0x7b},
	}
	for _, g := range garbage {
		if err := raw.WriteMessages(ctx, kafka.Message{Key: []byte("1"), Value: g}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Publish(ctx, good); err != nil {
		t.Fatal(err)
	}

	c := newConsumer(t, brokers, "workers", "orders", "orders.dlq")
	ds := fetchN(ctx, t, c, len(garbage)+1, 10, false)
	for i, g := range garbage {
		d := ds[i]
		if !errors.Is(d.Err, sale.ErrInvalid) {
			t.Fatalf("garbage %q: Err = %v, want ErrInvalid", g, d.Err)
		}
		if string(d.Raw) != string(g) || d.Order != (sale.Order{}) {
			t.Fatalf("garbage %q: Raw %q, Order %+v", g, d.Raw, d.Order)
		}
		if err := c.DeadLetter(ctx, d, fmt.Sprintf("undecodable #%d: %v", i, d.Err)); err != nil {
			t.Fatal(err)
		}
	}
	if last := ds[len(garbage)]; last.Err != nil || last.Order != good {
		t.Fatalf("good order after garbage: %+v, err %v", last.Order, last.Err)
	}
	if err := c.Commit(ctx, ds); err != nil {
		t.Fatal(err)
	}

	// Read the dead-letter topic back with a plain partition reader.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "orders.dlq", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	for i, g := range garbage {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if string(m.Value) != string(g) || string(m.Key) != "1" {
			t.Fatalf("dlq #%d: key %q value %q, want key \"1\" value %q", i, m.Key, m.Value, g)
		}
		wantReason := fmt.Sprintf("undecodable #%d: %v", i, ds[i].Err)
		if h[kafkaevents.HeaderReason] != wantReason {
			t.Fatalf("dlq #%d reason = %q, want %q", i, h[kafkaevents.HeaderReason], wantReason)
		}
		if h[kafkaevents.HeaderSourceOffset] != strconv.FormatInt(ds[i].Offset, 10) ||
			h[kafkaevents.HeaderSourceTopic] != "orders" || h[kafkaevents.HeaderSourcePartition] != "0" {
			t.Fatalf("dlq #%d headers = %v, want source orders/0@%d", i, h, ds[i].Offset)
		}
	}

	noDLQ := newConsumer(t, brokers, "other", "orders", "")
	if err := noDLQ.DeadLetter(ctx, ds[0], "x"); err == nil {
		t.Fatal("DeadLetter without a dead-letter topic returned nil")
	}
}

func TestFetchLingerAndCancel(t *testing.T) {
	t.Parallel()
	_, brokers := cluster(t, kafkaevents.Topic{Name: "orders", Partitions: 1})
	ctx := testCtx(t)
	c := newConsumer(t, brokers, "workers", "orders", "")

	// Nothing published: Fetch blocks until ctx's deadline, then says so.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	ds, err := c.Fetch(short, 10, 50*time.Millisecond)
	cancel()
	if len(ds) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("empty topic: %d deliveries, err %v; want DeadlineExceeded", len(ds), err)
	}

	sent := makeOrders(4, 1)
	p := newPublisher(t, brokers, "orders", kafkaevents.PublisherOptions{})
	if err := p.Publish(ctx, sent...); err != nil {
		t.Fatal(err)
	}
	ds, err = c.Fetch(ctx, 1, time.Second)
	if err != nil || len(ds) != 1 || ds[0].Order.ID != sent[0].ID {
		t.Fatalf("fetch max 1: %d deliveries, err %v", len(ds), err)
	}

	// A cancelled ctx returns at once and takes nothing from the reader,
	// however often it is tried.
	done, cancelNow := context.WithCancel(ctx)
	cancelNow()
	for range 50 {
		ds, err := c.Fetch(done, 10, time.Second)
		if len(ds) != 0 || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled fetch: %d deliveries, err %v", len(ds), err)
		}
	}
	// ... so the remaining three all come back, as a partial batch once
	// the linger runs out with fewer than max available.
	ds, err = c.Fetch(ctx, 10, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var got []sale.OrderID
	for _, d := range ds {
		got = append(got, d.Order.ID)
	}
	want := []sale.OrderID{sent[1].ID, sent[2].ID, sent[3].ID}
	if !slices.Equal(got, want) {
		t.Fatalf("partial batch = %v, want %v", got, want)
	}

	// A Fetch blocked on an empty topic returns when its ctx is cancelled.
	blocked, cancelBlocked := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Fetch(blocked, 10, 0)
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancelBlocked()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("blocked fetch returned %v, want Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Fetch ignored its cancelled ctx")
	}
}

func TestLagCountsUnfetched(t *testing.T) {
	t.Parallel()
	_, brokers := cluster(t, kafkaevents.Topic{Name: "orders", Partitions: 1})
	ctx := testCtx(t)
	p := newPublisher(t, brokers, "orders", kafkaevents.PublisherOptions{})
	if err := p.Publish(ctx, makeOrders(10, 2)...); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, brokers, "workers", "orders", "")
	if c.Lag() != 0 {
		t.Fatalf("Lag before any fetch = %d", c.Lag())
	}
	fetchN(ctx, t, c, 3, 3, true)
	if c.Lag() != 7 {
		t.Fatalf("Lag after 3 of 10 = %d, want 7", c.Lag())
	}
	fetchN(ctx, t, c, 7, 10, true)
	if c.Lag() != 0 {
		t.Fatalf("Lag after all = %d, want 0", c.Lag())
	}
}

func TestPublishFailsWhileProduceFails(t *testing.T) {
	t.Parallel()
	k, brokers := cluster(t, kafkaevents.Topic{Name: "orders", Partitions: 2})
	ctx := testCtx(t)
	const timeout = 2 * time.Second
	p := newPublisher(t, brokers, "orders", kafkaevents.PublisherOptions{WriteTimeout: timeout})
	orders := makeOrders(3, 3)
	// Connect and cache metadata first, so the failure below is the
	// produce path and nothing else.
	if err := p.Publish(ctx, orders[0]); err != nil {
		t.Fatal(err)
	}

	k.SetProduceFailure(true)
	// With the defaults, the broker's retriable error comes back once
	// MaxAttempts are spent, before WriteTimeout.
	err := p.Publish(ctx, orders[1])
	if !errors.Is(err, kafka.NotEnoughReplicas) {
		t.Fatalf("Publish while the broker refuses produce: err = %v, want NotEnoughReplicas", err)
	}
	if k.ProduceFailures() == 0 {
		t.Fatalf("Publish failed (%v) but the broker failed no produce request", err)
	}
	if p.Failed() != 1 || p.Published() != 1 {
		t.Fatalf("counters published=%d failed=%d, want 1 and 1", p.Published(), p.Failed())
	}

	// With retries to spare, WriteTimeout is what ends the call. This is a
	// bound, not a speed measurement.
	patient := newPublisher(t, brokers, "orders", kafkaevents.PublisherOptions{WriteTimeout: time.Second, MaxAttempts: 100})
	start := time.Now()
	err = patient.Publish(ctx, orders[1])
	if elapsed := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || elapsed > timeout {
		t.Fatalf("Publish with 100 attempts and a 1s WriteTimeout: err %v after %v", err, elapsed)
	}
	if patient.Failed() != 1 {
		t.Fatalf("patient publisher failed=%d, want 1", patient.Failed())
	}

	k.SetProduceFailure(false)
	if err := p.Publish(ctx, orders[2]); err != nil {
		t.Fatalf("Publish after the failure was lifted: %v", err)
	}
	// The order published after recovery reaches a consumer. The failed
	// one may too (at least once), so only presence is checked.
	c := newConsumer(t, brokers, "workers", "orders", "")
	found := false
	for !found {
		ds, err := c.Fetch(ctx, 10, 50*time.Millisecond)
		if err != nil {
			t.Fatalf("order published after recovery never arrived: %v", err)
		}
		for _, d := range ds {
			found = found || d.Order.ID == orders[2].ID
		}
	}
}

func TestPublishRefusesInvalidOrderAndClosedPublisher(t *testing.T) {
	t.Parallel()
	_, brokers := cluster(t, kafkaevents.Topic{Name: "orders", Partitions: 1})
	ctx := testCtx(t)
	p := kafkaevents.NewPublisher(brokers, "orders", kafkaevents.PublisherOptions{})
	bad := makeOrders(2, 1)
	bad[1].ItemID = 99 // no longer matches its id's prefix
	if err := p.Publish(ctx, bad...); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if err := p.Publish(ctx); err != nil {
		t.Fatalf("empty Publish: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, makeOrders(1, 1)...); err == nil {
		t.Fatal("Publish after Close returned nil")
	}
	// Nothing of the refused batch may have been written.
	c := newConsumer(t, brokers, "workers", "orders", "")
	expectNothing(ctx, t, c)
}

func TestEnsureTopicsAndPing(t *testing.T) {
	t.Parallel()
	k, brokers := cluster(t)
	ctx := testCtx(t)
	topics := []kafkaevents.Topic{{Name: "a", Partitions: 4}, {Name: "b", Partitions: 1}}
	if err := kafkaevents.EnsureTopics(ctx, brokers, topics...); err != nil {
		t.Fatal(err)
	}
	// Again, with one existing and one new topic: "already exists" is fine.
	if err := kafkaevents.EnsureTopics(ctx, brokers, kafkaevents.Topic{Name: "a", Partitions: 9}, kafkaevents.Topic{Name: "c", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"a", "b", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]int{}
	for _, tp := range md.Topics {
		parts[tp.Name] = len(tp.Partitions)
	}
	if parts["a"] != 4 || parts["b"] != 1 || parts["c"] != 2 {
		t.Fatalf("partitions = %v, want a:4 (unchanged) b:1 c:2", parts)
	}

	if err := kafkaevents.Ping(ctx, brokers); err != nil {
		t.Fatalf("Ping a live broker: %v", err)
	}
	k.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := kafkaevents.Ping(pctx, brokers); err == nil {
		t.Fatal("Ping a closed broker returned nil")
	}
	if err := kafkaevents.Ping(ctx, nil); err == nil {
		t.Fatal("Ping with no brokers returned nil")
	}
}

// TestTwoMembersShareTheTopic checks the group protocol beyond one member:
// a second member joining makes the first one rebalance, both end up with
// partitions, and between them every order is delivered.
func TestTwoMembersShareTheTopic(t *testing.T) {
	t.Parallel()
	_, brokers := cluster(t, kafkaevents.Topic{Name: "orders", Partitions: 4})
	ctx := testCtx(t)
	// Short heartbeats let the first member notice the rebalance quickly.
	opts := kafkaevents.ConsumerOptions{MaxWait: 100 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond}
	c1 := kafkaevents.NewConsumer(brokers, "workers", "orders", "", opts)
	t.Cleanup(func() { _ = c1.Close() })
	p := newPublisher(t, brokers, "orders", kafkaevents.PublisherOptions{})
	sent := makeOrders(80, 16)
	if err := p.Publish(ctx, sent[:4]...); err != nil {
		t.Fatal(err)
	}
	// c1 alone holds every partition.
	fetchN(ctx, t, c1, 4, 4, true)

	c2 := kafkaevents.NewConsumer(brokers, "workers", "orders", "", opts)
	t.Cleanup(func() { _ = c2.Close() })
	if err := p.Publish(ctx, sent[4:]...); err != nil {
		t.Fatal(err)
	}
	// c2 can only get a message once the group has rebalanced and given
	// it partitions.
	got2, err := c2.Fetch(ctx, 100, 20*time.Millisecond)
	if err != nil {
		t.Fatalf("second member never got a message: %v", err)
	}
	if err := c2.Commit(ctx, got2); err != nil {
		t.Fatal(err)
	}

	// Now drain with both until every order has arrived at least once.
	type result struct {
		member int
		ds     []kafkaevents.Delivery
	}
	results := make(chan result)
	drainCtx, stop := context.WithCancel(ctx)
	defer stop()
	for i, c := range []*kafkaevents.Consumer{c1, c2} {
		go func() {
			for {
				ds, err := c.Fetch(drainCtx, 20, 20*time.Millisecond)
				if err != nil {
					return
				}
				_ = c.Commit(drainCtx, ds)
				select {
				case results <- result{i + 1, ds}:
				case <-drainCtx.Done():
					return
				}
			}
		}()
	}
	seen := map[sale.OrderID]bool{}
	for _, o := range sent[:4] {
		seen[o.ID] = true
	}
	parts := map[int]map[int]bool{1: {}, 2: {}}
	for _, d := range got2 {
		seen[d.Order.ID] = true
		parts[2][d.Partition] = true
	}
	for len(seen) < len(sent) {
		select {
		case r := <-results:
			for _, d := range r.ds {
				seen[d.Order.ID] = true
				parts[r.member][d.Partition] = true
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d orders arrived; partitions per member %v", len(seen), len(sent), parts)
		}
	}
	stop()
	if len(parts[1]) == 0 || len(parts[2]) == 0 {
		t.Fatalf("partitions per member after the rebalance = %v; both should hold some", parts)
	}
}

func TestCloseUnblocksFetch(t *testing.T) {
	t.Parallel()
	_, brokers := cluster(t, kafkaevents.Topic{Name: "orders", Partitions: 1})
	ctx := testCtx(t)
	c := kafkaevents.NewConsumer(brokers, "workers", "orders", "", kafkaevents.ConsumerOptions{MaxWait: 100 * time.Millisecond})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Fetch(ctx, 10, 0)
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Fetch on a closed consumer returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock Fetch")
	}
	if _, err := c.Fetch(ctx, 10, 0); err == nil {
		t.Fatal("Fetch after Close returned no error")
	}
}
