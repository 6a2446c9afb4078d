package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"seckill/domain/sale"
)

// Where a consumer group with no committed offset starts reading.
const (
	// FirstOffset starts a new group at the oldest message still kept, so
	// orders published before the first worker joined are not skipped.
	FirstOffset = kafka.FirstOffset
	// LastOffset starts a new group at the next message published.
	LastOffset = kafka.LastOffset
)

// Headers written on every dead-lettered message.
const (
	HeaderReason          = "reason"
	HeaderSourceTopic     = "source-topic"
	HeaderSourcePartition = "source-partition"
	HeaderSourceOffset    = "source-offset"
)

// ConsumerOptions tunes a Consumer. Zero fields take the defaults noted.
type ConsumerOptions struct {
	// MinBytes is the least data a fetch waits for. Default 1, so a
	// single order is handed over as soon as it arrives.
	MinBytes int
	// MaxBytes caps one fetch response. Default 1 MiB.
	MaxBytes int
	// MaxWait is how long the broker holds a fetch that has less than
	// MinBytes. Default 500ms.
	MaxWait time.Duration
	// StartOffset is FirstOffset (default) or LastOffset; it applies only
	// to partitions the group has never committed.
	StartOffset int64
	// SessionTimeout is how long the coordinator waits for a heartbeat
	// before it gives this member's partitions away. Default 10s; a real
	// broker (and kfake) refuses less than group.min.session.timeout.ms,
	// 6s by default.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin during a rebalance. Default 10s.
	RebalanceTimeout time.Duration
	// HeartbeatInterval defaults to 3s.
	HeartbeatInterval time.Duration
	// ErrorLog, if set, receives kafka-go's error log lines.
	ErrorLog func(format string, args ...any)
}

func (o ConsumerOptions) withDefaults() ConsumerOptions {
	if o.MinBytes <= 0 {
		o.MinBytes = 1
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 20
	}
	if o.MaxBytes < o.MinBytes {
		o.MaxBytes = o.MinBytes
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 500 * time.Millisecond
	}
	if o.StartOffset != LastOffset {
		o.StartOffset = FirstOffset
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 10 * time.Second
	}
	if o.RebalanceTimeout <= 0 {
		o.RebalanceTimeout = 10 * time.Second
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 3 * time.Second
	}
	return o
}

// Delivery is one fetched message. Either Order is valid, or Err says why the
// message can never be an order (it matches sale.ErrInvalid) and the message
// belongs on the dead-letter topic.
type Delivery struct {
	Order     sale.Order
	Err       error
	Raw       []byte
	Partition int
	Offset    int64

	msg kafka.Message
}

// partLag is what the last message fetched from a partition said about it.
type partLag struct {
	next, highWater int64
}

// Consumer reads one topic as a member of a consumer group and commits
// offsets only when told to, synchronously. Its methods are safe for
// concurrent use, but one goroutine should drive Fetch and Commit: a commit
// covers every earlier offset of its partitions, including those of a batch
// another goroutine is still handling.
type Consumer struct {
	r     *kafka.Reader
	dlq   *kafka.Writer // nil without a dead-letter topic
	topic string

	mu  sync.Mutex
	lag map[int]partLag
}

// NewConsumer returns a member of group reading topic. It joins the group
// lazily, on the first Fetch. deadLetterTopic may be empty, in which case
// DeadLetter returns an error.
func NewConsumer(brokers []string, group, topic, deadLetterTopic string, opts ConsumerOptions) *Consumer {
	opts = opts.withDefaults()
	cfg := kafka.ReaderConfig{
		Brokers:  brokers,
		GroupID:  group,
		Topic:    topic,
		MinBytes: opts.MinBytes,
		MaxBytes: opts.MaxBytes,
		MaxWait:  opts.MaxWait,
		// CommitInterval 0 makes CommitMessages synchronous: Commit
		// returns only after the coordinator stored the offsets, so when
		// the worker moves on to its next batch the previous one can no
		// longer be redelivered by an unflushed background commit.
		CommitInterval:    0,
		StartOffset:       opts.StartOffset,
		SessionTimeout:    opts.SessionTimeout,
		RebalanceTimeout:  opts.RebalanceTimeout,
		HeartbeatInterval: opts.HeartbeatInterval,
		// kafka-go waits 5s between failed joins by default; a worker
		// that lost its coordinator should be back sooner.
		JoinGroupBackoff: time.Second,
		// Partitions added to the topic later get a consumer without a
		// restart.
		WatchPartitionChanges: true,
		Dialer: &kafka.Dialer{
			ClientID:  clientID,
			Timeout:   5 * time.Second,
			DualStack: true,
		},
	}
	if opts.ErrorLog != nil {
		cfg.ErrorLogger = kafka.LoggerFunc(opts.ErrorLog)
	}
	c := &Consumer{r: kafka.NewReader(cfg), topic: topic, lag: make(map[int]partLag)}
	if deadLetterTopic != "" {
		c.dlq = &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Topic:        deadLetterTopic,
			Balancer:     &kafka.Murmur2Balancer{},
			BatchTimeout: 2 * time.Millisecond,
			WriteTimeout: 5 * time.Second,
			MaxAttempts:  3,
			// The source message is committed after it is dead-lettered,
			// so the copy must be as durable as an order.
			RequiredAcks: kafka.RequireAll,
			Transport:    newTransport(),
		}
		if opts.ErrorLog != nil {
			c.dlq.ErrorLogger = kafka.LoggerFunc(opts.ErrorLog)
		}
	}
	return c
}

// Fetch blocks until one message is available or ctx is done, then gathers
// more until it holds limit or linger has passed since the first. Messages of
// one partition come in offset order, and whenever Fetch returns any
// messages its error is nil.
// A message Fetch does not return stays in the reader for the next call, and
// a ctx that is already done returns ctx.Err() without touching the reader.
func (c *Consumer) Fetch(ctx context.Context, limit int, linger time.Duration) ([]Delivery, error) {
	if limit < 1 {
		limit = 1
	}
	// kafka-go's FetchMessage picks at random between a done ctx and a
	// ready message; checking first makes a cancelled Fetch predictable.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := c.r.FetchMessage(ctx)
	if err != nil {
		return nil, fmt.Errorf("kafkaevents: fetch: %w", err)
	}
	ds := make([]Delivery, 0, limit)
	ds = append(ds, c.delivery(m))
	if len(ds) < limit && linger > 0 {
		lctx, cancel := context.WithTimeout(ctx, linger)
		for len(ds) < limit {
			m, err := c.r.FetchMessage(lctx)
			if err != nil {
				// The linger ran out, ctx ended or the reader closed;
				// whatever we hold is still owed to the caller, and a
				// closed reader will say so on the next call.
				break
			}
			ds = append(ds, c.delivery(m))
		}
		cancel()
	}
	c.mu.Lock()
	for _, d := range ds {
		c.lag[d.Partition] = partLag{next: d.Offset + 1, highWater: d.msg.HighWaterMark}
	}
	c.mu.Unlock()
	return ds, nil
}

// DeliveredOrder returns the decoded order, or why the message could not
// be decoded; it is the worker's view of a message (worker.Delivery), so the
// consumer feeds the worker directly, without a copy of every batch.
func (d Delivery) DeliveredOrder() (sale.Order, error) { return d.Order, d.Err }

func (c *Consumer) delivery(m kafka.Message) Delivery {
	d := Delivery{Raw: m.Value, Partition: m.Partition, Offset: m.Offset, msg: m}
	o, err := decodeOrder(m.Value)
	if err != nil {
		d.Err = fmt.Errorf("kafkaevents: message %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
		return d
	}
	o.RequestID = requestID(m)
	o.TraceParent = header(m, HeaderTraceparent)
	d.Order = o
	return d
}

// Commit stores, for each partition in ds, the offset after the highest
// delivery in ds, and returns once the group coordinator has accepted it.
// Everything before that offset counts as consumed, so commit a batch only
// after every delivery in it is handled (confirmed or dead-lettered).
func (c *Consumer) Commit(ctx context.Context, ds []Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(ds))
	for i, d := range ds {
		msgs[i] = d.msg
	}
	if err := c.r.CommitMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("kafkaevents: commit %d deliveries: %w", len(ds), err)
	}
	return nil
}

// DeadLetter copies d's key and raw value to the dead-letter topic with the
// headers reason, source-topic, source-partition and source-offset, and
// returns nil once all in-sync replicas have it. It does not commit d.
func (c *Consumer) DeadLetter(ctx context.Context, d Delivery, reason string) error {
	if c.dlq == nil {
		return errors.New("kafkaevents: dead letter: consumer has no dead-letter topic")
	}
	msg := kafka.Message{
		Key:   d.msg.Key,
		Value: d.Raw,
		Headers: []kafka.Header{
			{Key: HeaderReason, Value: []byte(reason)},
			{Key: HeaderSourceTopic, Value: []byte(c.topic)},
			{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(d.Partition))},
			{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(d.Offset, 10))},
		},
	}
	if err := c.dlq.WriteMessages(ctx, msg); err != nil {
		return fmt.Errorf("kafkaevents: dead letter %d@%d: %w", d.Partition, d.Offset, err)
	}
	return nil
}

// Lag returns how many messages the partitions this consumer has fetched
// from held after the last one Fetch returned, by the high watermarks those
// fetches saw. It is 0 before the first Fetch and goes stale while Fetch is
// not called or after a rebalance moves a partition away; it is for metrics.
func (c *Consumer) Lag() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, p := range c.lag {
		if d := p.highWater - p.next; d > 0 {
			n += d
		}
	}
	return n
}

// Close leaves the group, so its partitions move to other members at once,
// and releases the connections. A Fetch in progress returns an error.
func (c *Consumer) Close() error {
	err := c.r.Close()
	if c.dlq != nil {
		err = errors.Join(err, c.dlq.Close())
	}
	if err != nil {
		return fmt.Errorf("kafkaevents: close consumer: %w", err)
	}
	return nil
}
