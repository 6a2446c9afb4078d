package mysqlstore

import (
	"errors"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

// tracingPlugin gives every statement gorm runs a client span (named
// "<dialect> <operation> <table>", with the SQL text, which holds
// placeholders, not values), started from the statement's context with the
// provider Options.Tracing names. Written here because the contrib plugin
// (gorm.io/plugin/opentelemetry) imports gorm's ClickHouse and Postgres
// drivers into every binary that uses it.
type tracingPlugin struct {
	tracer  trace.Tracer
	dialect Dialect
}

// spanKey holds a statement's span between its before and after callbacks.
const spanKey = "seckill:span"

func (tracingPlugin) Name() string { return "seckill:tracing" }

// Initialize registers the span's start before, and its end after, gorm's
// own callback of each kind of statement.
func (p tracingPlugin) Initialize(db *gorm.DB) error {
	cb := db.Callback()
	type stage interface {
		Register(string, func(*gorm.DB)) error
	}
	for _, k := range []struct {
		op            string
		before, after stage
	}{
		{"create", cb.Create().Before("gorm:create"), cb.Create().After("gorm:create")},
		{"query", cb.Query().Before("gorm:query"), cb.Query().After("gorm:query")},
		{"update", cb.Update().Before("gorm:update"), cb.Update().After("gorm:update")},
		{"delete", cb.Delete().Before("gorm:delete"), cb.Delete().After("gorm:delete")},
		{"row", cb.Row().Before("gorm:row"), cb.Row().After("gorm:row")},
		{"raw", cb.Raw().Before("gorm:raw"), cb.Raw().After("gorm:raw")},
	} {
		if err := k.before.Register("seckill:trace_before_"+k.op, p.start(k.op)); err != nil {
			return err
		}
		if err := k.after.Register("seckill:trace_after_"+k.op, end); err != nil {
			return err
		}
	}
	return nil
}

func (p tracingPlugin) start(op string) func(*gorm.DB) {
	return func(db *gorm.DB) {
		ctx, span := p.tracer.Start(db.Statement.Context, strings.TrimSpace(string(p.dialect)+" "+op+" "+db.Statement.Table),
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system", string(p.dialect))))
		if !span.IsRecording() {
			return
		}
		db.Statement.Context = ctx
		db.InstanceSet(spanKey, span)
	}
}

func end(db *gorm.DB) {
	v, ok := db.InstanceGet(spanKey)
	if !ok {
		return
	}
	span := v.(trace.Span)
	span.SetAttributes(attribute.String("db.statement", db.Statement.SQL.String()), attribute.Int64("db.rows_affected", db.RowsAffected))
	if db.Error != nil && !errors.Is(db.Error, gorm.ErrRecordNotFound) {
		span.SetStatus(codes.Error, db.Error.Error())
	}
	span.End()
}
