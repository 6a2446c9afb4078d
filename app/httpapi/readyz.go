package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// ReadyProbeEvery is the least time between two backend probes of one
// instance's /readyz. The route is public: without the cache every request
// would dial each backend, an amplifier for anyone who floods it.
const ReadyProbeEvery = time.Second

// readiness holds the latest backend probe. One probe runs at a time, and
// requests that arrive while it runs wait for its answer instead of
// starting their own.
type readiness struct {
	mu     sync.Mutex
	at     time.Time
	probed bool
	ready  bool
	checks map[string]string
}

// probe returns the cached probe if it is younger than ReadyProbeEvery, or
// runs a new one. A failing check says "unavailable"; its detail (driver
// text, addresses) goes to the log only.
func (s *server) probe(ctx context.Context) (map[string]string, bool) {
	r := &s.ready
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.probed && time.Since(r.at) < ReadyProbeEvery {
		return r.checks, r.ready
	}
	// Detached from the request that happened to come first: its answer
	// serves everyone for the next second.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	checks, ready := map[string]string{}, true
	for _, ch := range s.Ready {
		if ch.Ping == nil {
			continue
		}
		if err := ch.Ping(ctx); err != nil {
			s.log.Warn("readiness probe failed", "check", ch.Name, "err", err)
			checks[ch.Name] = "unavailable"
			ready = false
		} else {
			checks[ch.Name] = "ok"
		}
	}
	r.probed, r.at, r.ready, r.checks = true, time.Now(), ready, checks
	return checks, ready
}

// readyz answers from the cached probe; breaker states are read live, as
// they cost no backend call.
func (s *server) readyz(c *gin.Context) {
	checks, ready := s.probe(c.Request.Context())
	breakers := gin.H{}
	for _, ch := range s.Ready {
		if ch.Ping == nil && ch.State != nil {
			breakers[ch.Name] = ch.State()
		}
	}
	body := gin.H{"status": "ok", "checks": checks}
	if len(breakers) > 0 {
		body["breakers"] = breakers
	}
	if !ready {
		body["status"] = "unavailable"
		c.JSON(http.StatusServiceUnavailable, body)
		return
	}
	c.JSON(http.StatusOK, body)
}
