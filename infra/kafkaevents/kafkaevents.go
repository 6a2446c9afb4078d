// Package kafkaevents carries accepted orders through Kafka with kafka-go:
// a Publisher that implements sale.OrderPublisher, a consumer-group Consumer
// that hands the order worker batches of Deliveries and commits their offsets
// synchronously, and a dead-letter path for messages that can never succeed.
//
// Each order travels as one JSON message keyed by its item id, so all orders
// for one item land on one partition and keep their order there:
//
//	{"v":1,"order_id":"7-…","item_id":7,"user_id":"u1","price_cents":999,"created_at":"2025-01-02T03:04:05.678Z"}
//
// Delivery is at least once. A Publish that returns an error may still have
// written some or all of its messages, and a message fetched but not
// committed comes back after a restart or a rebalance, so consumers must be
// idempotent (sale.OrderBook.Confirm skips orders already present).
//
// Every Publisher, and every Consumer's dead-letter writer, owns its kafka-go
// Transport. kafka-go caches cluster metadata per Transport, and a Writer
// whose Transport cached metadata before a topic existed fails with "Unknown
// Topic Or Partition" until the cache expires (seconds), so create topics
// with EnsureTopics before the first Publish or DeadLetter.
package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Topic names a topic and the partitions EnsureTopics gives it when it has to
// create it.
type Topic struct {
	Name string
	// Partitions is used only when the topic is created; 0 means the
	// broker's default (num.partitions).
	Partitions int
	// ReplicationFactor is used only when the topic is created; 0 means
	// the broker's default (default.replication.factor).
	ReplicationFactor int
}

// clientID names this application's connections in broker logs and quotas.
const clientID = "seckill"

// newTransport returns a Transport of our own, never kafka.DefaultTransport,
// so that one component's cached metadata cannot hide a topic from another.
func newTransport() *kafka.Transport {
	return &kafka.Transport{
		ClientID:    clientID,
		DialTimeout: 5 * time.Second,
		IdleTimeout: 30 * time.Second,
	}
}

// EnsureTopics creates the topics that do not exist yet and returns once
// cluster metadata lists every one of them with at least one partition, or
// when ctx is done. A topic that already exists is left as it is, even if its
// partition count differs from the one asked for.
func EnsureTopics(ctx context.Context, brokers []string, topics ...Topic) error {
	if len(brokers) == 0 {
		return errors.New("kafkaevents: no brokers")
	}
	if len(topics) == 0 {
		return nil
	}
	tr := newTransport()
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr}

	req := &kafka.CreateTopicsRequest{}
	names := make([]string, 0, len(topics))
	for _, t := range topics {
		if t.Name == "" {
			return errors.New("kafkaevents: topic with an empty name")
		}
		// -1 asks the broker for its default (CreateTopics v4+, which
		// kafka-go negotiates with any broker since Kafka 2.4).
		parts, repl := t.Partitions, t.ReplicationFactor
		if parts <= 0 {
			parts = -1
		}
		if repl <= 0 {
			repl = -1
		}
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t.Name, NumPartitions: parts, ReplicationFactor: repl})
		names = append(names, t.Name)
	}
	res, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("kafkaevents: create topics %v: %w", names, err)
	}
	for name, err := range res.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("kafkaevents: create topic %q: %w", name, err)
		}
	}

	// CreateTopics returns before every broker has learned of the topic;
	// a Writer that looks too early caches "unknown topic", so wait until
	// metadata shows each topic with a leader-bearing partition.
	for {
		missing, err := missingTopics(ctx, client, names)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("not yet in metadata: %v", missing)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkaevents: wait for topics %v: %w (last: %v)", names, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// missingTopics returns the names that metadata does not yet show as usable.
func missingTopics(ctx context.Context, client *kafka.Client, names []string) ([]string, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, err
	}
	ready := make(map[string]bool, len(md.Topics))
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			continue
		}
		ok := true
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				ok = false
				break
			}
		}
		ready[t.Name] = ok
	}
	var missing []string
	for _, n := range names {
		if !ready[n] {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

// Ping returns nil when a broker answers a metadata request and names at
// least one live broker before ctx's deadline. It opens and closes its own
// connection, so it reports the cluster as a new client would find it.
func Ping(ctx context.Context, brokers []string) error {
	if len(brokers) == 0 {
		return errors.New("kafkaevents: no brokers")
	}
	tr := newTransport()
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr}
	// An empty (not nil) topic list asks for brokers only; nil would ask
	// for every topic, which the probe does not need.
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
	if err != nil {
		return fmt.Errorf("kafkaevents: ping: %w", err)
	}
	if len(md.Brokers) == 0 {
		return errors.New("kafkaevents: ping: metadata lists no brokers")
	}
	return nil
}
