package kafkaevents_test

import (
	"testing"

	"seckill/infra/kafkaevents"
)

// TestBacklogCountsUncommittedBelowMarks: marks taken after a publish cover
// those messages; the group is behind by all of them until it commits, and
// messages published after the marks do not count.
func TestBacklogCountsUncommittedBelowMarks(t *testing.T) {
	t.Parallel()
	_, brokers := cluster(t, kafkaevents.Topic{Name: "orders", Partitions: 3})
	ctx := testCtx(t)
	b := kafkaevents.NewBacklog(brokers, "workers", "orders")
	empty, err := b.Marks(ctx)
	if err != nil || len(empty) != 3 {
		t.Fatalf("Marks on an empty topic = %v, %v; want 3 partitions", empty, err)
	}
	if n, err := b.Behind(ctx, empty); err != nil || n != 0 {
		t.Fatalf("Behind on an empty topic = %d, %v; want 0", n, err)
	}
	p := newPublisher(t, brokers, "orders", kafkaevents.PublisherOptions{})
	sent := makeOrders(9, 3)
	if err := p.Publish(ctx, sent...); err != nil {
		t.Fatal(err)
	}
	marks, err := b.Marks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := b.Behind(ctx, marks); err != nil || n != 9 {
		t.Fatalf("Behind before any commit = %d, %v; want 9", n, err)
	}
	c := newConsumer(t, brokers, "workers", "orders", "")
	fetchN(ctx, t, c, 4, 4, true)
	if n, err := b.Behind(ctx, marks); err != nil || n != 5 {
		t.Fatalf("Behind after committing 4 = %d, %v; want 5", n, err)
	}
	// Published after the marks: not part of this backlog.
	if err := p.Publish(ctx, makeOrders(12, 3)[9:]...); err != nil {
		t.Fatal(err)
	}
	fetchN(ctx, t, c, 8, 8, true)
	if n, err := b.Behind(ctx, marks); err != nil || n != 0 {
		t.Fatalf("Behind after committing everything below the marks = %d, %v; want 0", n, err)
	}
}
