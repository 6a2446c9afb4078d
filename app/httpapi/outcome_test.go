package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"seckill/app/purchase"
	"seckill/domain/sale"
)

// TestOutcomeUnknownAnswersTheNextStep: a purchase whose reservation was
// sent and left unanswered is 504 outcome_unknown naming the order and
// where to look, without Retry-After, even when its chain also holds an
// error the 503 rows map (the table's first match wins).
func TestOutcomeUnknownAnswersTheNextStep(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	c.Request = httptest.NewRequest(http.MethodPost, "/api/v1/items/7/purchase", nil)
	s := &server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err := &sale.OutcomeUnknownError{OrderID: "7-0123456789abcdef0123456789ab", ItemID: 7,
		Err: fmt.Errorf("%w: reserve: redis-ledger: no answer within 150ms", purchase.ErrUnavailable)}
	if code := s.writeError(c, err); code != "outcome_unknown" {
		t.Fatalf("code %q, want outcome_unknown", code)
	}
	var got errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusGatewayTimeout || got.Error != "outcome_unknown" || got.OrderID != "7-0123456789abcdef0123456789ab" ||
		got.OrdersURL != "/api/v1/items/7/orders" || got.Message == "" || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("answer %d %s (Retry-After %q); want 504 outcome_unknown with order_id and orders_url, no Retry-After",
			rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
}
