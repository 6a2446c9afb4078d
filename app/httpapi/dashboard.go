package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"seckill/app/dashboard"
	"seckill/domain/sale"
)

// dashboardStreamRoute is the Server-Sent Events stream behind /dashboard.
// The deadline middleware skips it: a stream lasts as long as its viewer,
// and ends on server shutdown instead.
const dashboardStreamRoute = "/api/v1/dashboard/stream"

// dashboardEvery is the time between two events of the stream.
const dashboardEvery = time.Second

// dashboardItems bounds the sales whose stock the dashboard reads each
// second (three queries each), newest start first.
const dashboardItems = 4

// MaxDashboardStreams caps the dashboard streams one instance serves at
// once; past it a viewer gets 503 unavailable. The route is public and each
// stream holds a connection and a goroutine for as long as it stays open.
const MaxDashboardStreams = 64

// errTooManyStreams refuses a dashboard viewer past MaxDashboardStreams.
var errTooManyStreams = errors.New("too many dashboard streams")

// dashboardStream serves the dashboard's events. It is public and
// read-only: every figure is an aggregate (rates, quantiles, stock and
// order counts), none names a user or an order.
type dashboardStream struct {
	sampler *dashboard.Sampler
	// history is the last two minutes of frames, which a new viewer gets
	// first: a page opened after a lab run, or reconnecting, draws the run.
	history *dashboard.History
	// recorded says a loop of the instance's own fills history once a
	// second (Deps.Running); without it the viewers sample as they wait.
	recorded bool
	log      func(msg string, args ...any)
	// shutdowns holds, per *http.Server that serves the stream, a channel
	// closed when that server begins its shutdown. http.Server.Shutdown
	// does not cancel request contexts and waits for active connections, so
	// without it an open dashboard would hold a shutdown until its timeout.
	shutdowns sync.Map
	// open counts the streams being served; refuse answers one too many.
	open   atomic.Int64
	max    int64
	refuse func(c *gin.Context)
}

func newDashboardStream(s *server) gin.HandlerFunc {
	d := &dashboardStream{log: s.log.Warn, max: MaxDashboardStreams,
		refuse: func(c *gin.Context) { s.writeError(c, errTooManyStreams) }}
	var stock dashboard.StockFunc
	if s.Catalog != nil {
		stock = s.dashboardStock
	}
	d.sampler = dashboard.NewSampler(s.Metrics.Registry, stock)
	d.history = dashboard.NewHistory(dashboard.HistoryFrames)
	if s.Running != nil {
		d.recorded = true
		go d.recordUntil(s.Running)
	}
	return d.serve
}

// record samples (or shares the sample of whoever did within the sampler's
// MinGap) and keeps the frame in the history.
func (d *dashboardStream) record(ctx context.Context) {
	f, err := d.sampler.Frame(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log("dashboard sample failed", "err", err)
		}
		return
	}
	d.history.Add(f)
}

// recordUntil records a frame at once and then one per dashboardEvery,
// watched or not, until ctx is done.
func (d *dashboardStream) recordUntil(ctx context.Context) {
	tick := time.NewTicker(dashboardEvery)
	defer tick.Stop()
	for {
		d.record(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// dashboardStock reads the stock accounts of the sales on now (open or sold
// out, not upcoming or ended), the newest dashboardItems of them.
func (s *server) dashboardStock(ctx context.Context) ([]dashboard.Item, error) {
	// Detached from the viewer who happened to trigger the sample: its frame
	// is shared, and that viewer leaving must not spoil it for the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	views, err := s.Catalog.Items(ctx)
	if err != nil {
		return nil, err
	}
	var on []sale.Item
	for _, v := range views {
		if v.Status == sale.StatusActive || v.Status == sale.StatusSoldOut {
			on = append(on, v.Item)
		}
	}
	sort.Slice(on, func(i, j int) bool { return on[i].StartsAt.After(on[j].StartsAt) })
	out := make([]dashboard.Item, 0, min(len(on), dashboardItems))
	for _, it := range on[:min(len(on), dashboardItems)] {
		st, err := s.Catalog.Stats(ctx, it.ID)
		if errors.Is(err, sale.ErrNotFound) {
			continue // deleted between the list and the stats
		}
		if err != nil {
			return nil, err
		}
		out = append(out, dashboard.Item{
			ID: int64(it.ID), Name: it.Name, StockRedis: st.StockLeftLedger, StockDB: st.StockLeftDB,
			Pending: st.Pending, Confirmed: st.Confirmed + st.Paid,
		})
	}
	return out, nil
}

// shutdownOf returns a channel closed when the server serving r shuts down,
// or nil (never closed) when r did not come through an http.Server.
func (d *dashboardStream) shutdownOf(r *http.Request) <-chan struct{} {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	if srv == nil {
		return nil
	}
	ch := make(chan struct{})
	got, loaded := d.shutdowns.LoadOrStore(srv, ch)
	if !loaded {
		// Once per server, not per viewer, so viewers add nothing to the
		// server's shutdown list.
		srv.RegisterOnShutdown(func() { close(ch) })
	}
	return got.(chan struct{})
}

// serve writes the history first, oldest frame first, and then each frame
// as it is kept (one per dashboardEvery), until the viewer goes away, the
// server shuts down or a write fails. Without a recording loop the viewer
// samples: at once, so the page never waits a second for its first frame,
// and then once per dashboardEvery, shared with the other viewers.
func (d *dashboardStream) serve(c *gin.Context) {
	if d.open.Add(1) > d.max {
		d.open.Add(-1)
		d.refuse(c)
		return
	}
	defer d.open.Add(-1)
	ctx := c.Request.Context()
	stop := d.shutdownOf(c.Request)
	rc := http.NewResponseController(c.Writer)
	// The server's read and write timeouts are sized for ordinary requests;
	// this one is meant to stay open. The write deadline moves forward with
	// each event; the read deadline is cleared so that its expiry can never
	// be taken for the client going away.
	_ = rc.SetReadDeadline(time.Time{})
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// nginx (deploy/nginx) buffers responses by default; an event stream
	// must reach the page as it is written.
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)

	var tick <-chan time.Time
	if !d.recorded {
		d.record(ctx)
		t := time.NewTicker(dashboardEvery)
		defer t.Stop()
		tick = t.C
	}
	var last int64
	for {
		frames, next := d.history.After(last)
		if len(frames) > 0 {
			if err := writeFrames(c.Writer, rc, frames); err != nil {
				return
			}
			last = frames[len(frames)-1].T
		}
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-next:
		case <-tick:
			d.record(ctx)
		}
	}
}

// writeFrames writes frames as "data: {json}" events and flushes them.
func writeFrames(w io.Writer, rc *http.ResponseController, frames []dashboard.Frame) error {
	var buf bytes.Buffer
	for _, f := range frames {
		b, _ := json.Marshal(f)
		buf.WriteString("data: ")
		buf.Write(b)
		buf.WriteString("\n\n")
	}
	_ = rc.SetWriteDeadline(time.Now().Add(5 * dashboardEvery))
	if _, err := w.Write(buf.Bytes()); err != nil {
		return err
	}
	return rc.Flush()
}
