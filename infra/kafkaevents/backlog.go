package kafkaevents

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// Backlog tells how far a consumer group is behind on a topic, for a
// recovery that must wait until every order already in the queue has been
// decided by the workers before it trusts the database's figures.
type Backlog struct {
	client *kafka.Client
	group  string
	topic  string
}

// NewBacklog returns a Backlog for group on topic. It connects lazily.
func NewBacklog(brokers []string, group, topic string) *Backlog {
	return &Backlog{
		client: &kafka.Client{Addr: kafka.TCP(brokers...), Transport: newTransport()},
		group:  group, topic: topic,
	}
}

// Marks returns each partition's high watermark now: the offset the next
// message will get. Every message published before the call is below it.
func (b *Backlog) Marks(ctx context.Context) (map[int]int64, error) {
	md, err := b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{b.topic}})
	if err != nil {
		return nil, fmt.Errorf("kafkaevents: backlog metadata: %w", err)
	}
	var reqs []kafka.OffsetRequest
	for _, t := range md.Topics {
		if t.Name != b.topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("kafkaevents: backlog metadata of %s: %w", b.topic, t.Error)
		}
		for _, p := range t.Partitions {
			reqs = append(reqs, kafka.LastOffsetOf(p.ID))
		}
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("kafkaevents: topic %s has no partitions", b.topic)
	}
	res, err := b.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{b.topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("kafkaevents: list offsets of %s: %w", b.topic, err)
	}
	out := make(map[int]int64, len(reqs))
	for _, po := range res.Topics[b.topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("kafkaevents: offsets of %s/%d: %w", b.topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	return out, nil
}

// Behind returns how many messages below marks the group has not yet
// committed, summed over partitions; 0 means every message published before
// the marks were taken has been processed. A partition the group never
// committed counts in full.
func (b *Backlog) Behind(ctx context.Context, marks map[int]int64) (int64, error) {
	parts := make([]int, 0, len(marks))
	for p := range marks {
		parts = append(parts, p)
	}
	res, err := b.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: b.group, Topics: map[string][]int{b.topic: parts}})
	if err != nil {
		return 0, fmt.Errorf("kafkaevents: committed offsets of %s: %w", b.group, err)
	}
	if res.Error != nil && !errors.Is(res.Error, kafka.GroupIdNotFound) {
		return 0, fmt.Errorf("kafkaevents: committed offsets of %s: %w", b.group, res.Error)
	}
	committed := make(map[int]int64, len(parts))
	for _, po := range res.Topics[b.topic] {
		if po.Error != nil {
			return 0, fmt.Errorf("kafkaevents: committed offset of %s/%d: %w", b.topic, po.Partition, po.Error)
		}
		committed[po.Partition] = po.CommittedOffset
	}
	var behind int64
	for p, mark := range marks {
		c, ok := committed[p]
		if !ok || c < 0 {
			c = 0
		}
		if mark > c {
			behind += mark - c
		}
	}
	return behind, nil
}
