package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"seckill/infra/embedded"
)

func startKafka(t *testing.T, topics ...embedded.KafkaTopic) *embedded.Kafka {
	t.Helper()
	k, err := embedded.StartKafka("127.0.0.1:0", topics...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

func newReader(brokers []string, group, topic string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: group, Topic: topic,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond,
		CommitInterval: 0, SessionTimeout: 6 * time.Second,
	})
}

// TestKafkaGoCompatibility is the probe that the rest of the Kafka tests
// stand on: plain kafka-go, no adapter, against the embedded broker over TCP.
// Writer with acks=all, consumer-group Reader with FetchMessage and
// synchronous CommitMessages, committed offsets surviving a new member, and
// a cancelled FetchMessage leaving its message in place.
func TestKafkaGoCompatibility(t *testing.T) {
	t.Parallel()
	k := startKafka(t, embedded.KafkaTopic{Name: "probe", Partitions: 2})
	brokers := k.Brokers()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w := &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: "probe", Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond,
	}
	defer w.Close()
	const n = 20
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprint(i % 3)), Value: []byte(fmt.Sprint(i))}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write: %v", err)
	}

	// First member: take half, committing each one.
	seen := map[string]bool{}
	r := newReader(brokers, "g", "probe")
	for len(seen) < n/2 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		seen[string(m.Value)] = true
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	// A FetchMessage with a cancelled ctx must not swallow a message: the
	// reader picks at random between ctx.Done and a ready message, so any
	// message it hands back is counted, and none may go missing below.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	for range 50 {
		m, err := r.FetchMessage(cctx)
		if err == nil {
			// Returned despite the cancelled ctx: it is ours, commit it.
			seen[string(m.Value)] = true
			if err := r.CommitMessages(ctx, m); err != nil {
				t.Fatalf("commit: %v", err)
			}
		} else if !errors.Is(err, context.Canceled) {
			t.Fatalf("fetch with cancelled ctx: %v", err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// Second member of the same group: exactly the rest, no committed one.
	r = newReader(brokers, "g", "probe")
	defer r.Close()
	for len(seen) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch after reopen (have %d of %d): %v", len(seen), n, err)
		}
		if seen[string(m.Value)] {
			t.Fatalf("message %s was committed but delivered again", m.Value)
		}
		seen[string(m.Value)] = true
	}
}

func TestKafkaSeedsTopics(t *testing.T) {
	t.Parallel()
	k := startKafka(t,
		embedded.KafkaTopic{Name: "a", Partitions: 3},
		embedded.KafkaTopic{Name: "b", Partitions: 1})
	client := &kafka.Client{Addr: kafka.TCP(k.Brokers()...), Timeout: 5 * time.Second}
	md, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, tp := range md.Topics {
		if tp.Error != nil {
			t.Fatalf("topic %s: %v", tp.Name, tp.Error)
		}
		got[tp.Name] = len(tp.Partitions)
	}
	if got["a"] != 3 || got["b"] != 1 {
		t.Fatalf("partitions = %v, want a:3 b:1", got)
	}
}

func TestKafkaProduceFailureToggles(t *testing.T) {
	t.Parallel()
	k := startKafka(t, embedded.KafkaTopic{Name: "t", Partitions: 1})
	w := &kafka.Writer{
		Addr: kafka.TCP(k.Brokers()...), Topic: "t", RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, MaxAttempts: 2, WriteBackoffMin: 10 * time.Millisecond,
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	k.SetProduceFailure(true)
	err := w.WriteMessages(ctx, kafka.Message{Value: []byte("x")})
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != 1 || !errors.Is(werrs[0], kafka.NotEnoughReplicas) {
		t.Fatalf("write while failing: err = %v, want NotEnoughReplicas", err)
	}
	if k.ProduceFailures() < 2 {
		t.Fatalf("ProduceFailures = %d, want at least the 2 attempts", k.ProduceFailures())
	}
	k.SetProduceFailure(false)
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("y")}); err != nil {
		t.Fatalf("write after failure off: %v", err)
	}
	// Nothing from the failed write may have been stored.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers(), Topic: "t", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Value) != "y" || m.Offset != 0 {
		t.Fatalf("first stored message = %q at %d, want \"y\" at 0", m.Value, m.Offset)
	}
}
