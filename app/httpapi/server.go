// Package httpapi is the Gin HTTP layer: routes, JSON shapes, authentication
// and the one error table. Handlers parse and validate input, call one use
// case, and render its result; they hold no business rules.
package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"seckill/app/auth"
	"seckill/app/catalog"
	"seckill/app/fairness"
	"seckill/app/lifecycle"
	"seckill/app/metrics"
	"seckill/app/purchase"
	"seckill/app/reqid"
	"seckill/app/tracing"
	"seckill/domain/sale"
)

// OpenAPI is the API description served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// MaxBodyBytes bounds every request body on every route: a larger body gets
// the JSON 413 payload_too_large before any handler or use case runs, so it
// changes nothing.
const MaxBodyBytes = 64 << 10

// MaxHeaderBytes bounds the request line and headers as the handler counts
// them: more gets the JSON 431 headers_too_large and changes nothing. The
// http.Server's own MaxHeaderBytes (1 MiB in app/bootstrap) must stay above
// it, because headers beyond the server's limit never reach a handler and
// get Go's own plain-text 431 instead.
const MaxHeaderBytes = 64 << 10

// Check is one readiness probe, or, with State set and Ping nil, one
// circuit breaker shown under "breakers" in /readyz. A breaker never makes
// the instance unready: while one is open the instance still serves what
// does not need that backend (item pages without live stock), and the
// backend's own probe already says it is down.
type Check struct {
	Name  string
	Ping  func(ctx context.Context) error
	State func() string // "closed", "half-open" or "open"
}

// Deps are what the HTTP layer needs.
type Deps struct {
	Purchase   *purchase.Service
	Catalog    *catalog.Service
	Lifecycle  *lifecycle.Service
	Fair       *fairness.Service
	Signer     *auth.Signer
	AdminToken string
	Metrics    *metrics.Metrics
	Log        *slog.Logger
	Ready      []Check
	// Web, if set, serves the sale page and its assets at / and /static/.
	Web http.Handler
	// RequestTimeout bounds each request's work; default 5s.
	RequestTimeout time.Duration
	// AccessLog writes one structured line per request (method, route,
	// status, duration, request id and, for an accepted purchase, the
	// order id).
	AccessLog bool
	Now       func() time.Time
	// Queue serves the waiting rooms of queue items at
	// /api/v1/items/{id}/queue; without it that route is not found.
	Queue waitingRoom
	// Running, if set, is done when the instance stops. Until then the
	// dashboard samples once a second whether anyone watches or not and
	// keeps the last two minutes, which a page opened late draws first.
	// Without it (tests) the dashboard samples only while someone watches.
	Running context.Context
}

type server struct {
	Deps
	log *slog.Logger
	// ready is the cached /readyz probe (readyz.go).
	ready readiness
}

func init() { gin.SetMode(gin.ReleaseMode) }

// New returns the HTTP handler with every route.
func New(d Deps) *gin.Engine {
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = 5 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	s := &server{Deps: d, log: d.Log}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	if tracing.Enabled() {
		r.Use(tracing.Gin())
	}
	r.Use(s.requestID, s.recoverJSON, s.observe, s.bounds, s.deadline)
	r.NoRoute(func(c *gin.Context) { s.writeError(c, errRouteNotFound) })
	r.NoMethod(func(c *gin.Context) { s.writeError(c, errMethod) })

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(d.Metrics.Handler()))
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", OpenAPI) })

	v1 := r.Group("/api/v1")
	v1.POST("/login", s.login)
	v1.GET("/items", s.listItems)
	v1.GET("/items/:id", s.getItem)
	v1.GET("/dashboard/stream", newDashboardStream(s))
	v1.POST("/items/:id/purchase", s.requireUser, s.purchase)
	v1.GET("/items/:id/challenge", s.requireUser, s.challenge)
	v1.POST("/items/:id/ticket", s.requireUser, s.ticket)
	v1.GET("/items/:id/orders", s.requireUser, s.itemOrders)
	v1.GET("/orders/:order_id", s.requireUser, s.getOrder)
	v1.POST("/orders/:order_id/pay", s.requireUser, s.payOrder)
	v1.POST("/orders/:order_id/cancel", s.requireUser, s.cancelOrder)

	v1.POST("/items/:id/queue", s.requireUser, s.joinQueue)
	v1.GET("/items/:id/queue", s.requireUser, s.pollQueue)

	admin := v1.Group("/admin", s.requireAdmin)
	admin.POST("/items", s.createItem)
	admin.PATCH("/items/:id", s.patchItem)
	admin.POST("/items/:id/restock", s.restock)
	admin.GET("/items/:id/stats", s.stats)
	admin.GET("/blocklist", s.blocklist)
	admin.POST("/blocklist/:user_id", s.block)
	admin.DELETE("/blocklist/:user_id", s.unblock)

	if d.Web != nil {
		r.GET("/", gin.WrapH(d.Web))
		r.GET("/admin", gin.WrapH(d.Web))
		r.GET("/dashboard", gin.WrapH(d.Web))
		r.GET("/static/*path", gin.WrapH(d.Web))
	}
	return r
}

// Ops returns the handler of an instance that serves no API (a worker):
// only /healthz, /readyz and /metrics.
func Ops(m *metrics.Metrics, ready []Check, log *slog.Logger) *gin.Engine {
	s := &server{Deps: Deps{Metrics: m, Ready: ready, Log: log}, log: log}
	r := gin.New()
	r.Use(s.requestID, s.recoverJSON, s.observe, s.bounds, s.requestContext)
	r.NoRoute(func(c *gin.Context) { s.writeError(c, errRouteNotFound) })
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(m.Handler()))
	return r
}

// recoverJSON turns a panic into a 500 JSON error and a log line, so a bug
// never kills the process or answers with an HTML page.
func (s *server) recoverJSON(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // a panic value, compared as net/http compares it
				panic(v)
			}
			s.log.Error("panic in handler", "route", c.FullPath(), "request_id", c.GetHeader(reqid.Header), "panic", v)
			abortWithError(c, http.StatusInternalServerError, internalBody)
		}
	}()
	c.Next()
}

// requestID takes the client's X-Request-ID when it is usable (else makes
// one), answers with it, and leaves it in the request's own header, from
// which deadline (or requestContext) puts it into the request's context,
// where the purchase use case copies it onto the order and every log line
// of the request finds it. Putting it there in the same step as the
// deadline costs the hot path one copy of the request instead of two.
func (s *server) requestID(c *gin.Context) {
	id := c.GetHeader(reqid.Header)
	if !reqid.Valid(id) {
		id = reqid.New()
		c.Request.Header.Set(reqid.Header, id)
	}
	c.Header(reqid.Header, id)
	c.Next()
}

// requestContext puts the request id into the context, for routers and
// routes that have no deadline.
func (s *server) requestContext(c *gin.Context) {
	c.Request = c.Request.WithContext(reqid.With(c.Request.Context(), c.GetHeader(reqid.Header)))
	c.Next()
}

// accessLogOn reports whether an access-log line would be written, so the
// hot path builds none when the log level or the flag would drop it.
func (s *server) accessLogOn(c *gin.Context) bool {
	return s.AccessLog && s.log.Enabled(c.Request.Context(), slog.LevelInfo)
}

// orderKey is where the purchase handler leaves the accepted order's id for
// the access log.
const orderKey = "seckill.order"

func (s *server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	took := time.Since(start)
	s.Metrics.ObserveHTTP(route, c.Request.Method, c.Writer.Status(), took)
	if s.accessLogOn(c) {
		attrs := []slog.Attr{
			slog.String("request_id", c.GetHeader(reqid.Header)),
			slog.String("method", c.Request.Method), slog.String("route", route),
			slog.String("path", c.Request.URL.Path), slog.Int("status", c.Writer.Status()),
			slog.Duration("took", took),
		}
		if id, ok := c.Get(orderKey); ok {
			attrs = append(attrs, slog.Any("order_id", id))
		}
		s.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "http request", attrs...)
	}
}

// bounds refuses requests whose headers exceed MaxHeaderBytes (431) or whose
// body exceeds MaxBodyBytes (413), on every route and before any handler, so
// a route that never reads its body (purchase) applies the same limit as one
// that decodes JSON.
func (s *server) bounds(c *gin.Context) {
	if headerBytes(c.Request) > MaxHeaderBytes {
		c.Header("Connection", "close")
		s.writeError(c, errHeadersTooLarge)
		return
	}
	body := c.Request.Body
	// The common case, a purchase or a GET, has no body: no wrapper, no read.
	if body == nil || body == http.NoBody {
		return
	}
	if c.Request.ContentLength > MaxBodyBytes {
		// Refused unread: close the connection rather than drain a body we
		// will not use.
		c.Header("Connection", "close")
		s.writeError(c, errBodyTooLarge)
		return
	}
	limited := http.MaxBytesReader(c.Writer, body, MaxBodyBytes)
	if c.Request.ContentLength > 0 {
		// The server ends the body at its Content-Length, which fits; the
		// wrapper still bounds a caller that built the request by hand.
		c.Request.Body = limited
		return
	}
	// No length (chunked): only reading tells its size. Read it now, once,
	// so that a route that ignores its body cannot accept an oversized one;
	// handlers then read the buffered copy.
	buf, err := io.ReadAll(limited)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.writeError(c, errBodyTooLarge)
			return
		}
		s.writeError(c, jsonError("the body could not be read: "+err.Error()))
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(buf))
	c.Request.ContentLength = int64(len(buf))
}

// headerBytes is the size of the request line and headers as they came over
// the wire, give or take whitespace: name, ": ", value and CRLF per line.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4 + len("Host: ") + len(r.Host) + 2
	for name, values := range r.Header {
		for _, v := range values {
			n += len(name) + len(v) + 4
		}
	}
	return n
}

// deadline bounds the request's working time. The dashboard's event stream
// is exempt: it lasts as long as its viewer and ends on shutdown.
func (s *server) deadline(c *gin.Context) {
	ctx := reqid.With(c.Request.Context(), c.GetHeader(reqid.Header))
	if c.FullPath() == dashboardStreamRoute {
		c.Request = c.Request.WithContext(ctx)
		c.Next()
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// decodeJSON reads exactly one JSON object into v, refusing unknown fields,
// trailing data and bodies over MaxBodyBytes. A well-formed object with a
// field v does not have is invalid_request naming that field, not
// invalid_json: the JSON is fine, the request is not.
func decodeJSON(c *gin.Context, v any) error {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return errMediaType
		}
	}
	// The whole body is read first (it is at most MaxBodyBytes) so that an
	// unknown field can be told apart from broken JSON after it.
	raw, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errBodyTooLarge
		}
		return jsonError("the body could not be read in full")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return jsonError("the body is empty; send a JSON object")
		}
		if name, ok := unknownField(err); ok && json.Valid(raw) {
			reason := "unknown field"
			if known := jsonFields(v); len(known) > 0 {
				reason += "; this request takes " + strings.Join(known, ", ")
			}
			return &sale.ValidationError{Field: name, Reason: reason}
		}
		return decodeError(err, raw, v)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return jsonError("the body has data after the JSON object")
	}
	return nil
}

// unknownField returns the name in encoding/json's DisallowUnknownFields
// error, which has no type of its own to match: `json: unknown field "x"`.
func unknownField(err error) (string, bool) {
	const prefix = "json: unknown field "
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return "", false
	}
	name, uerr := strconv.Unquote(msg[len(prefix):])
	return name, uerr == nil
}

// jsonFields lists the JSON names of the struct v points to, in declaration
// order, so an unknown-field answer can say what the request takes.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

type jsonErr struct{ msg string }

func (e jsonErr) Error() string        { return e.msg }
func (e jsonErr) Is(target error) bool { return target == errBadJSON }
func jsonError(msg string) error       { return jsonErr{msg} }

const userKey = "seckill.user"

func bearer(c *gin.Context) string {
	h := c.GetHeader("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (s *server) requireUser(c *gin.Context) {
	user, err := s.Signer.Verify(bearer(c))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Set(userKey, user)
	c.Next()
}

func (s *server) requireAdmin(c *gin.Context) {
	if !auth.EqualToken(bearer(c), s.AdminToken) {
		s.writeError(c, errAdminAuth)
		return
	}
	c.Next()
}

func userOf(c *gin.Context) sale.UserID {
	return c.MustGet(userKey).(sale.UserID)
}
