package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"seckill/app/waitroom"
	"seckill/domain/sale"
)

// The waiting-room routes (app/waitroom): join a queue item's line, and
// poll it until admitted. Both answer the buyer's status in one shape.

// waitingRoom is the waiting-room use case.
type waitingRoom interface {
	Join(ctx context.Context, user sale.UserID, id sale.ItemID) (waitroom.Status, error)
	Poll(ctx context.Context, user sale.UserID, id sale.ItemID) (waitroom.Status, error)
}

var _ waitingRoom = (*waitroom.Service)(nil)

// joinQueue answers 202 with the status: joining is accepted, the
// admission comes later.
func (s *server) joinQueue(c *gin.Context) {
	if s.Queue == nil {
		s.writeError(c, errRouteNotFound)
		return
	}
	s.queueStatus(c, http.StatusAccepted, s.Queue.Join)
}

// pollQueue answers 200 with the status.
func (s *server) pollQueue(c *gin.Context) {
	if s.Queue == nil {
		s.writeError(c, errRouteNotFound)
		return
	}
	s.queueStatus(c, http.StatusOK, s.Queue.Poll)
}

func (s *server) queueStatus(c *gin.Context, status int, call func(context.Context, sale.UserID, sale.ItemID) (waitroom.Status, error)) {
	id, ok := s.itemID(c)
	if !ok {
		return
	}
	st, err := call(c.Request.Context(), userOf(c), id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	// Built by hand: polls are the line's hottest path, and every field is
	// digits, a fixed word, or a ticket of base64url, digits and dots.
	b := make([]byte, 0, 160)
	b = append(b, `{"state":"`...)
	b = append(b, st.State...)
	b = append(b, '"')
	switch st.State {
	case waitroom.StateWaiting:
		b = append(b, `,"position":`...)
		b = strconv.AppendInt(b, st.Position, 10)
		b = append(b, `,"eta_seconds":`...)
		b = strconv.AppendInt(b, int64(st.ETA/time.Second), 10)
	case waitroom.StateAdmitted:
		b = append(b, `,"ticket":"`...)
		b = append(b, st.Ticket...)
		b = append(b, `","expires_at":"`...)
		b = st.ExpiresAt.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, '}')
	c.Data(status, jsonContentType, b)
}
