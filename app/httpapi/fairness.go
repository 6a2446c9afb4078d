package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"seckill/domain/sale"
)

// The fair-sale routes (app/fairness): challenges, tickets and the
// blocklist. Each answer, issued or refused, is counted in
// seckill_fairness_total by step and outcome.

func (s *server) challenge(c *gin.Context) {
	id, ok := s.itemID(c)
	if !ok {
		s.Metrics.Fairness("challenge", "invalid_request")
		return
	}
	ch, err := s.Fair.Challenge(c.Request.Context(), userOf(c), id)
	if err != nil {
		s.Metrics.Fairness("challenge", s.writeError(c, err))
		return
	}
	s.Metrics.Fairness("challenge", "issued")
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{
		"challenge": ch.Challenge, "difficulty": ch.Difficulty,
		"expires_at": ch.ExpiresAt.UTC().Format(time.RFC3339Nano),
	})
}

// ticket issues a purchase ticket. The body is {"challenge", "nonce"} for a
// pow item and may be empty for a ticket item.
func (s *server) ticket(c *gin.Context) {
	id, ok := s.itemID(c)
	if !ok {
		s.Metrics.Fairness("ticket", "invalid_request")
		return
	}
	var req struct {
		Challenge string `json:"challenge"`
		Nonce     string `json:"nonce"`
	}
	if hasBody(c) {
		if err := decodeJSON(c, &req); err != nil {
			s.Metrics.Fairness("ticket", s.writeError(c, err))
			return
		}
	}
	t, err := s.Fair.IssueTicket(c.Request.Context(), userOf(c), id, req.Challenge, req.Nonce)
	if err != nil {
		s.Metrics.Fairness("ticket", s.writeError(c, err))
		return
	}
	s.Metrics.Fairness("ticket", "issued")
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"ticket": t.Ticket, "expires_at": t.ExpiresAt.UTC().Format(time.RFC3339Nano)})
}

type blockedJSON struct {
	UserID    sale.UserID `json:"user_id"`
	Reason    string      `json:"reason"`
	BlockedAt time.Time   `json:"blocked_at"`
}

func (s *server) blocklist(c *gin.Context) {
	list, err := s.Fair.Blocklist(c.Request.Context())
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := make([]blockedJSON, 0, len(list))
	for _, b := range list {
		out = append(out, blockedJSON{UserID: b.User, Reason: b.Reason, BlockedAt: b.BlockedAt})
	}
	c.JSON(http.StatusOK, gin.H{"blocked": out})
}

func (s *server) blockedUser(c *gin.Context) (sale.UserID, bool) {
	u, err := sale.ParseUserID(c.Param("user_id"))
	if err != nil {
		s.writeError(c, err)
		return "", false
	}
	return u, true
}

// block puts a user on the blocklist; the body {"reason": "..."} is
// optional. 201 if they were added, 200 if they already were on it.
func (s *server) block(c *gin.Context) {
	u, ok := s.blockedUser(c)
	if !ok {
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if hasBody(c) {
		if err := decodeJSON(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
	}
	added, err := s.Fair.Block(c.Request.Context(), u, req.Reason)
	if err != nil {
		s.writeError(c, err)
		return
	}
	status := http.StatusOK
	if added {
		status = http.StatusCreated
	}
	c.JSON(status, gin.H{"user_id": u, "blocked": true, "added": added})
}

// unblock takes a user off the blocklist: 200 whether or not they were on
// it (removed says which), so a retried DELETE is harmless.
func (s *server) unblock(c *gin.Context) {
	u, ok := s.blockedUser(c)
	if !ok {
		return
	}
	removed, err := s.Fair.Unblock(c.Request.Context(), u)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"user_id": u, "blocked": false, "removed": removed})
}
