package embedded

import (
	"fmt"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaTopic is a topic to create when the broker starts. It has the same
// fields as kafkaevents.Topic's first two, so a kafkaevents.Topic t converts
// with embedded.KafkaTopic{Name: t.Name, Partitions: t.Partitions}.
type KafkaTopic struct {
	Name       string
	Partitions int
}

// Kafka is a one-broker kfake cluster on a real TCP port. kafka-go's
// Writer, Client and consumer-group Reader (join, sync, heartbeat, offset
// commit and fetch) work against it.
type Kafka struct {
	c *kfake.Cluster

	mu    sync.Mutex
	fault *kfake.FaultHandle
	hits  int // produce requests failed by faults already removed
}

// StartKafka listens on addr ("127.0.0.1:0" picks a free port) and creates
// topics before it accepts the first request, so no client can cache
// metadata that lacks them. The broker advertises its listen address, so
// addr should be one that clients can dial (not 0.0.0.0 across machines).
func StartKafka(addr string, topics ...KafkaTopic) (*Kafka, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("embedded: start kafka on %s: %w", addr, err)
	}
	return StartKafkaOn(ln, topics...)
}

// StartKafkaOn is StartKafka on a listener the caller opened. The broker
// advertises ln.Addr(), so a listener whose Addr names another address (a
// test's fault proxy in front of it) makes clients reach it through that
// address, metadata included. StartKafkaOn owns ln from then on.
func StartKafkaOn(ln net.Listener, topics ...KafkaTopic) (*Kafka, error) {
	handed := false
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("seckill-embedded"),
		// kfake always listens on 127.0.0.1:<port>; handing it our own
		// listener lets the caller choose the address and learn a
		// random port without a close-then-reopen race.
		kfake.ListenFn(func(string, string) (net.Listener, error) {
			if handed {
				return nil, fmt.Errorf("embedded: kfake asked for a second listener")
			}
			handed = true
			return ln, nil
		}),
	}
	for _, t := range topics {
		if t.Name == "" {
			ln.Close()
			return nil, fmt.Errorf("embedded: kafka topic with an empty name")
		}
		// SeedTopics with p < 1 means kfake's default (10 partitions).
		opts = append(opts, kfake.SeedTopics(int32(t.Partitions), t.Name)) //nolint:gosec // G115: a partition count from our own config, far below 2^31
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		if !handed {
			ln.Close()
		}
		return nil, fmt.Errorf("embedded: start kafka: %w", err)
	}
	return &Kafka{c: c}, nil
}

// Brokers returns the bootstrap addresses to give a Kafka client.
func (k *Kafka) Brokers() []string { return k.c.ListenAddrs() }

// SetProduceFailure, while on, makes the broker answer every produce request
// with NOT_ENOUGH_REPLICAS, a retriable error, without storing the records,
// so a producer that waits for acks keeps failing until it is turned off.
// Fetches, metadata and consumer groups are unaffected.
func (k *Kafka) SetProduceFailure(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case on && k.fault == nil:
		k.fault = k.c.Fault(kfake.Fault{
			Keys:  []kmsg.Key{kmsg.Produce},
			Err:   kerr.NotEnoughReplicas,
			Count: -1,
		})
	case !on && k.fault != nil:
		k.fault.Remove()
		k.hits += k.fault.Hits()
		k.fault = nil
	}
}

// ProduceFailures returns how many produce requests SetProduceFailure has
// failed since the broker started, so a test can tell an injected failure
// from any other.
func (k *Kafka) ProduceFailures() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.hits
	if k.fault != nil {
		n += k.fault.Hits()
	}
	return n
}

// Close stops the broker and drops its data; calling it again does nothing.
func (k *Kafka) Close() { k.c.Close() }
