package lab

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"seckill/app/web"
)

// front is the labs' one address for a whole `lab run`: it listens before
// the first run's system starts (so the printed dashboard URL answers at
// once) and until the last run ends. It passes every request to the
// system of the run under way, each of which listens on a port of its own;
// before the first run and between two runs it serves the dashboard page
// itself and answers everything else 503, so an open page keeps retrying
// its stream and picks up the next run when it starts.
//
// The labs drive their load at the system's own port, not through the
// front, so the proxy adds nothing to what they measure.
type front struct {
	ln     net.Listener
	srv    *http.Server
	target atomic.Pointer[frontTarget]
	page   http.Handler
}

// frontTarget is the system the front passes requests to.
type frontTarget struct {
	base  string
	proxy *httputil.ReverseProxy
}

// serveFront serves on ln until close.
func serveFront(ln net.Listener) *front {
	f := &front{ln: ln, page: web.Handler()}
	// No read or write timeout: the dashboard's stream stays open for as
	// long as the page does.
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serveHTTP), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = f.srv.Serve(ln) }()
	return f
}

// URL is the front's base URL, e.g. http://127.0.0.1:8070.
func (f *front) URL() string { return "http://" + f.ln.Addr().String() }

// use passes requests to the system at base from now on; "" to none.
func (f *front) use(base string) {
	if base == "" {
		f.target.Store(nil)
		return
	}
	u, err := url.Parse(base)
	if err != nil {
		f.target.Store(nil)
		return
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u); r.Out.Host = r.In.Host },
		// The system went away mid-request (its run ended): the page
		// retries, as it does between runs.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { betweenRuns(w) },
		ErrorLog:     log.New(io.Discard, "", 0),
	}
	f.target.Store(&frontTarget{base: base, proxy: p})
}

// leave stops passing requests to the system at base, if it is the one in use.
func (f *front) leave(base string) {
	if t := f.target.Load(); t != nil && t.base == base {
		f.target.CompareAndSwap(t, nil)
	}
}

func (f *front) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if t := f.target.Load(); t != nil {
		t.proxy.ServeHTTP(w, r)
		return
	}
	if r.Method == http.MethodGet && (r.URL.Path == "/dashboard" || strings.HasPrefix(r.URL.Path, "/static/")) {
		f.page.ServeHTTP(w, r)
		return
	}
	betweenRuns(w)
}

// betweenRuns answers a request no system can serve: the shop's own JSON
// 503, with a retry hint.
func betweenRuns(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"error":"unavailable","message":"no lab run is under way; the next one starts in a moment"}`))
}

// close stops the front; an open page's stream ends with it.
func (f *front) close() {
	if err := f.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = f.ln.Close()
	}
}
