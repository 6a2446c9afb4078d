package main

import (
	"context"
	"io"
	"log/slog"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/tracing"
)

// startTracing turns tracing on as cfg says (nothing with --tracing=off)
// and returns the function that flushes the spans still buffered; the
// process names itself after its roles in the trace viewer.
func startTracing(ctx context.Context, cfg config.Config, roles bootstrap.Roles, stdout io.Writer, log *slog.Logger) (func(), error) {
	service := "seckill"
	switch {
	case roles.API && !roles.Worker:
		service = "seckill-api"
	case roles.Worker && !roles.API:
		service = "seckill-worker"
	}
	shutdown, err := tracing.Setup(ctx, tracing.Config{
		Exporter: cfg.Tracing, Sample: cfg.TraceSample, Endpoint: cfg.TraceEndpoint,
		Service: service, Instance: cfg.InstanceID, Stdout: stdout,
	})
	if err != nil {
		return nil, err
	}
	if cfg.Tracing != tracing.ExporterOff {
		log.Info("tracing on", "exporter", cfg.Tracing, "sample", cfg.TraceSample, "service", service)
	}
	return func() { //nolint:contextcheck // ctx is done when the process stops; the flush needs a live deadline
		// Its own deadline: ctx is done by the time the process stops.
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			log.Warn("tracing: spans not flushed", "err", err)
		}
	}, nil
}
