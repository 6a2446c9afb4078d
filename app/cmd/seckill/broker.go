package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"seckill/app/config"
	"seckill/infra/embedded"
)

// brokerWarning is said at start and in --help, because an operator who
// mistakes this broker for Kafka would lose every queued order on a restart.
const brokerWarning = "It keeps messages in memory only: a restart loses every message and every committed\n" +
	"consumer-group offset. It is for development and the chaos tests (make chaos), never production."

// brokerFlags are the only config settings the broker uses; the others would
// be accepted and ignored, which --help would then advertise as meaningful.
var brokerFlags = []string{"kafka-topic", "kafka-dlq-topic", "kafka-partitions"}

// brokerCommand is `seckill broker`: the embedded Kafka-protocol broker
// (franz-go kfake) as a process of its own, so that separate serve and worker
// processes can share it and a test can SIGKILL and restart it.
func brokerCommand(stdout, stderr io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("seckill broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9092", "address to listen on; the broker advertises it, so clients must be able to dial it")

	// Borrow the topic settings from config.Config so their names, defaults
	// and help text stay the ones serve, worker and all use.
	var cfg config.Config
	all := flag.NewFlagSet("config", flag.ContinueOnError)
	cfg.Register(all)
	for _, name := range brokerFlags {
		f := all.Lookup(name)
		fs.Var(f.Value, f.Name, f.Usage)
	}

	return &ffcli.Command{
		Name:       "broker",
		ShortUsage: "seckill broker [flags]",
		ShortHelp:  "run an in-memory Kafka-protocol broker for development (never production)",
		LongHelp: "Runs the embedded Kafka-protocol broker (franz-go kfake) on --addr and creates the orders\n" +
			"topic (--kafka-partitions partitions) and the dead-letter topic, so that 'seckill serve' and\n" +
			"'seckill worker' processes can share it through --kafka-brokers.\n\n" + brokerWarning + "\n\n" +
			"Every flag can also be set by an environment variable: --kafka-topic is " +
			config.EnvName("kafka-topic") + ", --addr is " + config.EnvName("addr") + ". A flag on the command line wins.",
		FlagSet: fs,
		Options: []ff.Option{ff.WithEnvVarPrefix(config.EnvPrefix)},
		Exec: func(ctx context.Context, rest []string) error {
			if len(rest) > 0 {
				return fmt.Errorf("unexpected arguments %q; see seckill broker --help", rest)
			}
			return runBroker(ctx, *addr, cfg, stdout, stderr)
		},
	}
}

// runBroker serves until ctx ends (SIGINT/SIGTERM in main), then closes the
// broker, which drops everything it held.
func runBroker(ctx context.Context, addr string, cfg config.Config, stdout, stderr io.Writer) error {
	switch {
	case cfg.KafkaTopic == "" || cfg.KafkaDLQTopic == "":
		return errors.New("--kafka-topic and --kafka-dlq-topic must not be empty")
	case cfg.KafkaParts < 1:
		return errors.New("--kafka-partitions must be at least 1")
	}
	fmt.Fprintln(stderr, "seckill broker: WARNING:", brokerWarning)
	k, err := embedded.StartKafka(addr,
		embedded.KafkaTopic{Name: cfg.KafkaTopic, Partitions: cfg.KafkaParts},
		// One partition, as bootstrap creates it: dead letters are rare
		// and read by people, so their order matters more than spread.
		embedded.KafkaTopic{Name: cfg.KafkaDLQTopic, Partitions: 1})
	if err != nil {
		return err
	}
	defer k.Close()
	fmt.Fprintf(stdout, "seckill broker: listening on %s (topics %s with %d partitions, %s)\n",
		k.Brokers()[0], cfg.KafkaTopic, cfg.KafkaParts, cfg.KafkaDLQTopic)
	<-ctx.Done()
	fmt.Fprintln(stderr, "seckill broker: signal received; stopping (in-memory messages are dropped)")
	return nil
}
