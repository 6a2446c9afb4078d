package kafkaevents

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"seckill/domain/sale"
)

var _ sale.OrderPublisher = (*Publisher)(nil)

// PublisherOptions tunes a Publisher. Zero fields take the defaults noted.
type PublisherOptions struct {
	// BatchSize caps the messages sent to one partition in one produce
	// request. Default 100.
	BatchSize int
	// BatchTimeout is how long a partly filled batch waits for company
	// before it is sent. Default 2ms: every Publish waits for its acks, so
	// kafka-go's own default of 1s would add up to a second to each call.
	BatchTimeout time.Duration
	// WriteTimeout bounds one Publish call, retries included, and each
	// produce request within it. Default 5s. A deadline on the caller's
	// ctx that comes sooner wins.
	WriteTimeout time.Duration
	// MaxAttempts is how many times a batch is sent before a retriable
	// broker error is returned. Default 3.
	MaxAttempts int
	// ErrorLog, if set, receives kafka-go's error log lines.
	ErrorLog func(format string, args ...any)
}

func (o PublisherOptions) withDefaults() PublisherOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = 2 * time.Millisecond
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	return o
}

// Publisher writes orders to one topic, keyed by item id (and stock bucket,
// see orderKey), and waits for every in-sync replica to acknowledge them. It is safe for concurrent use.
type Publisher struct {
	w         *kafka.Writer
	timeout   time.Duration
	published atomic.Int64
	failed    atomic.Int64
}

// NewPublisher returns a Publisher for topic. It connects lazily, on the
// first Publish; the topic must already exist (see EnsureTopics).
func NewPublisher(brokers []string, topic string, opts PublisherOptions) *Publisher {
	opts = opts.withDefaults()
	w := &kafka.Writer{
		Addr:  kafka.TCP(brokers...),
		Topic: topic,
		// Murmur2 on the key is the Java client's default partitioner,
		// so any other producer keyed by item id picks the same
		// partition and one item's orders stay in one ordered log.
		Balancer:     &kafka.Murmur2Balancer{},
		BatchSize:    opts.BatchSize,
		BatchTimeout: opts.BatchTimeout,
		WriteTimeout: opts.WriteTimeout,
		ReadTimeout:  opts.WriteTimeout,
		MaxAttempts:  opts.MaxAttempts,
		// An order is accepted once Publish returns nil; losing it to a
		// leader failover afterwards would oversell, so wait for all
		// in-sync replicas.
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: false,
		Transport:              newTransport(),
	}
	if opts.ErrorLog != nil {
		w.ErrorLogger = kafka.LoggerFunc(opts.ErrorLog)
	}
	return &Publisher{w: w, timeout: opts.WriteTimeout}
}

// Publish writes the orders and returns nil only when every one of them has
// been acknowledged by all in-sync replicas. On error any subset may have
// been written; publishing the same orders again is safe because consumers
// skip orders they have already confirmed. An order that fails Check is
// refused with an error matching sale.ErrInvalid and nothing is written.
func (p *Publisher) Publish(ctx context.Context, orders ...sale.Order) error {
	if len(orders) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(orders))
	for i, o := range orders {
		key, value, err := encodeOrder(o)
		if err != nil {
			return err
		}
		msgs[i] = kafka.Message{Key: key, Value: value, Headers: traceHeaders(o)}
	}

	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	spans := startPublish(ctx, orders, msgs)
	err := p.w.WriteMessages(ctx, msgs...)
	endPublish(spans, err)
	if err == nil {
		p.published.Add(int64(len(msgs)))
		return nil
	}

	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		// kafka-go reports per message; keep the counters exact and
		// return each distinct cause once, so errors.Is sees them.
		var causes []error
		seen := make(map[string]bool)
		failed := 0
		for _, e := range werrs {
			if e == nil {
				continue
			}
			failed++
			if !seen[e.Error()] {
				seen[e.Error()] = true
				causes = append(causes, e)
			}
		}
		p.published.Add(int64(len(msgs) - failed))
		p.failed.Add(int64(failed))
		return fmt.Errorf("kafkaevents: publish: %d of %d orders not acknowledged: %w", failed, len(msgs), errors.Join(causes...))
	}
	// Anything else (deadline, closed writer, unknown topic) leaves every
	// message's fate unknown, so count them all as failed.
	p.failed.Add(int64(len(msgs)))
	return fmt.Errorf("kafkaevents: publish %d orders: %w", len(msgs), err)
}

// Published returns how many orders Publish has seen acknowledged.
func (p *Publisher) Published() int64 { return p.published.Load() }

// Failed returns how many orders Publish has returned an error for; the
// count only grows, so it suits a Prometheus counter.
func (p *Publisher) Failed() int64 { return p.failed.Load() }

// Close sends any batch still waiting, waits for it, and releases the
// connections. Publish after Close returns an error.
func (p *Publisher) Close() error {
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("kafkaevents: close publisher: %w", err)
	}
	return nil
}
