package tracing

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// discard is a span exporter that drops what it gets: the benchmark then
// measures the spans' cost in the process, not an exporter's.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkGinRequest is one request through the middleware and a handler
// that opens one child span (as reserve does), with tracing off and on at
// 1 % and 100 % sampling: what tracing adds to a request that does little
// else (bench (c) and (d), a sold-out or rate-limited purchase).
func BenchmarkGinRequest(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	for _, c := range []struct {
		name   string
		sample float64
		on     bool
	}{{"off", 0, false}, {"sample=0.01", 0.01, true}, {"sample=1", 1, true}} {
		b.Run(c.name, func(b *testing.B) {
			if c.on {
				tp := NewProvider(Config{Sample: c.sample, Service: "b"}, sdktrace.WithBatcher(discard{}))
				defer func() { _ = tp.Shutdown(context.Background()) }()
				defer Install(tp)()
			}
			r := gin.New()
			if Enabled() {
				r.Use(Gin())
			}
			r.POST("/api/v1/items/:id/purchase", func(c *gin.Context) {
				_, s := Start(c.Request.Context(), "reserve")
				s.End()
				c.Status(http.StatusConflict)
			})
			req := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/api/v1/items/%d/purchase", 7), nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				r.ServeHTTP(w, req)
			}
		})
	}
}
