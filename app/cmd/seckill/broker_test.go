package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/segmentio/kafka-go"
)

// syncBuffer is a bytes.Buffer the broker goroutine and the test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestBrokerCarriesMessages starts `seckill broker` and checks that kafka-go
// can produce to the topic it created and read the message back through a
// consumer group, and that cancelling (what SIGINT/SIGTERM do) stops it.
func TestBrokerCarriesMessages(t *testing.T) {
	addr := freeAddr(t)
	var stdout, stderr syncBuffer
	cmd := brokerCommand(&stdout, &stderr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- cmd.ParseAndRun(ctx, []string{"--addr", addr, "--kafka-topic", "broker-test", "--kafka-partitions", "2"})
	}()

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "listening on "+addr) {
		select {
		case err := <-done:
			t.Fatalf("broker exited early: %v; stderr: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker did not report listening on %s; stdout %q stderr %q", addr, stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "memory only") {
		t.Errorf("the start-up warning does not say the broker is in memory only: %q", stderr.String())
	}

	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "broker-test", Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, WriteTimeout: 5 * time.Second, BatchTimeout: time.Millisecond}
	defer w.Close()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := w.WriteMessages(wctx, kafka.Message{Key: []byte("7"), Value: []byte("hello")}); err != nil {
		t.Fatalf("produce: %v", err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: "broker-test-group", Topic: "broker-test",
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	m, err := r.FetchMessage(rctx)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	if string(m.Key) != "7" || string(m.Value) != "hello" {
		t.Fatalf("consumed %q=%q, want 7=hello", m.Key, m.Value)
	}
	if err := r.CommitMessages(rctx, m); err != nil {
		t.Fatalf("commit: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("broker stopped with %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("broker did not stop within 10s of cancellation")
	}
}

// TestBrokerHelpListsOnlyItsFlags guards --help: it names exactly the flags
// the broker reads and carries the in-memory warning.
func TestBrokerHelpListsOnlyItsFlags(t *testing.T) {
	var stdout, stderr syncBuffer
	cmd := brokerCommand(&stdout, &stderr)
	if err := cmd.Parse([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help returned %v, want flag.ErrHelp", err)
	}
	var got []string
	cmd.FlagSet.VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
	want := []string{"addr", "kafka-dlq-topic", "kafka-partitions", "kafka-topic"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("broker flags %v, want %v", got, want)
	}
	usage := ffcli.DefaultUsageFunc(cmd)
	for _, s := range []string{"memory only", "never production", "-kafka-topic"} {
		if !strings.Contains(usage, s) {
			t.Errorf("--help lacks %q:\n%s", s, usage)
		}
	}
	if strings.Contains(usage, "redis-addr") {
		t.Errorf("--help lists a flag the broker ignores:\n%s", usage)
	}
}

// TestBrokerRejectsBadSettings checks that a broker that could not carry
// orders refuses to start instead of listening.
func TestBrokerRejectsBadSettings(t *testing.T) {
	var stdout, stderr syncBuffer
	cmd := brokerCommand(&stdout, &stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := cmd.ParseAndRun(ctx, []string{"--addr", freeAddr(t), "--kafka-partitions", "0"})
	if err == nil || !strings.Contains(err.Error(), "kafka-partitions") {
		t.Fatalf("--kafka-partitions 0: got %v, want an error naming the flag", err)
	}
	if strings.Contains(stdout.String(), "listening") {
		t.Fatalf("broker listened despite a bad setting: %q", stdout.String())
	}
}
