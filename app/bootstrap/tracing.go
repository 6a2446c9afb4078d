package bootstrap

import (
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"seckill/app/tracing"
)

// traceRedis gives every command and pipeline a client gives Redis within a
// traced request a span of its own (go-redis's OpenTelemetry hook), when
// tracing is on; with it off the clients are left without the hook. The
// statement is left out: it would carry user ids and cost a formatted
// string per command.
func traceRedis(clients ...redis.UniversalClient) error {
	if !tracing.Enabled() {
		return nil
	}
	for _, c := range clients {
		if err := redisotel.InstrumentTracing(c,
			redisotel.WithTracerProvider(tracing.ChildrenOnly()),
			redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
			return err
		}
	}
	return nil
}

// traceSQL is the provider the store gives each statement's span from
// when tracing is on (only under a traced request or batch), else nil.
func traceSQL() trace.TracerProvider {
	if !tracing.Enabled() {
		return nil
	}
	return tracing.ChildrenOnly()
}
