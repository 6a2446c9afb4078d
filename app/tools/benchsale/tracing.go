package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"seckill/app/tracing"
)

// traceSink is an OTLP/HTTP endpoint that reads and discards every export:
// with -tracing=otlp and no -trace-endpoint, the run pays everything
// tracing costs seckill (spans, batching, protobuf, the HTTP export) and
// nothing a collector on the same cores would.
type traceSink struct {
	srv             *http.Server
	addr            string
	requests, bytes atomic.Int64
}

func startTraceSink() (*traceSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &traceSink{addr: ln.Addr().String()}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		s.requests.Add(1)
		s.bytes.Add(n)
		// An empty ExportTraceServiceResponse: everything accepted.
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// startTracing turns tracing on in this process, which both seckill
// instances share, before they are built (the HTTP middleware is installed
// only when tracing is on). It returns the function that flushes the
// spans and reports what was exported.
func (b *bench) startTracing(ctx context.Context) (stop func(), err error) {
	o := b.o
	if o.tracing == tracing.ExporterOff {
		return func() {}, nil
	}
	endpoint, sink := o.traceEndpoint, (*traceSink)(nil)
	if endpoint == "" {
		if sink, err = startTraceSink(); err != nil {
			return nil, err
		}
		endpoint = sink.addr
	}
	shutdown, err := tracing.Setup(ctx, tracing.Config{Exporter: tracing.ExporterOTLP, Sample: o.traceSample, Endpoint: endpoint, Service: "benchsale"})
	if err != nil {
		return nil, err
	}
	b.logf("tracing on: OTLP/HTTP to %s, sampling %g of new traces", map[bool]string{true: "a discarding sink " + endpoint, false: endpoint}[sink != nil], o.traceSample)
	return func() { //nolint:contextcheck // the flush runs after the run's ctx is done; it needs a deadline of its own
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			b.logf("tracing: flush: %v", err)
		}
		if sink != nil {
			b.logf("tracing: %d OTLP exports, %s of spans received by the sink", sink.requests.Load(), fmt.Sprintf("%.1f MiB", float64(sink.bytes.Load())/(1<<20)))
			_ = sink.srv.Close()
		}
	}, nil
}
