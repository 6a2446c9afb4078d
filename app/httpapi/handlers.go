package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"seckill/app/catalog"
	"seckill/domain/sale"
)

// itemJSON is the public shape of an item.
type itemJSON struct {
	ID           sale.ItemID     `json:"id"`
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	PriceCents   int64           `json:"price_cents"`
	StockTotal   int64           `json:"stock_total"`
	StockLeft    *int64          `json:"stock_left"` // null: the stock ledger cannot be read now
	StartsAt     time.Time       `json:"starts_at"`
	EndsAt       time.Time       `json:"ends_at"`
	Status       sale.Status     `json:"status"`
	PurchaseRate int64           `json:"purchase_rate"`
	StockBuckets int             `json:"stock_buckets"`
	Protection   sale.Protection `json:"protection"`
	Version      int64           `json:"version"`
	// The waiting room of a queue item; 0 on other items.
	AdmitPerSecond int64 `json:"admit_per_second"`
	MaxActive      int64 `json:"max_active"`
}

func toItemJSON(v catalog.View) itemJSON {
	var left *int64
	if v.StockKnown {
		left = &v.StockLeft
	}
	return itemJSON{
		ID: v.Item.ID, Name: v.Item.Name, Description: v.Item.Description,
		PriceCents: v.Item.PriceCents, StockTotal: v.Item.StockTotal, StockLeft: left,
		StartsAt: v.Item.StartsAt, EndsAt: v.Item.EndsAt, Status: v.Status,
		PurchaseRate: v.Item.PurchaseRate, StockBuckets: v.Item.Buckets(), Protection: v.Item.Protection.OrNone(),
		Version:        v.Item.Version,
		AdmitPerSecond: v.Item.AdmitPerSecond, MaxActive: v.Item.MaxActive,
	}
}

// orderJSON is the public shape of an order. pay_by is null until the order
// is confirmed, paid_at until it is paid.
type orderJSON struct {
	OrderID    sale.OrderID     `json:"order_id"`
	ItemID     sale.ItemID      `json:"item_id"`
	UserID     sale.UserID      `json:"user_id"`
	PriceCents int64            `json:"price_cents"`
	Status     sale.OrderStatus `json:"status"`
	Reason     string           `json:"reason"`
	CreatedAt  time.Time        `json:"created_at"`
	PayBy      *time.Time       `json:"pay_by"`
	PaidAt     *time.Time       `json:"paid_at"`
	PaymentRef string           `json:"payment_ref,omitempty"`
}

func toOrderJSON(o sale.Order) orderJSON {
	out := orderJSON{
		OrderID: o.ID, ItemID: o.ItemID, UserID: o.UserID, PriceCents: o.PriceCents,
		Status: o.Status, Reason: o.Reason, CreatedAt: o.CreatedAt, PaymentRef: o.PaymentRef,
	}
	if !o.PayBy.IsZero() {
		t := o.PayBy
		out.PayBy = &t
	}
	if !o.PaidAt.IsZero() {
		t := o.PaidAt
		out.PaidAt = &t
	}
	return out
}

// restockJSON is an item after a restock or a create, with the key the
// change was recorded under.
type restockJSON struct {
	itemJSON
	IdempotencyKey string `json:"idempotency_key"`
}

func ledgerState(live bool) string {
	if live {
		return "live"
	}
	return "missing"
}

func (s *server) login(c *gin.Context) {
	var req struct {
		UserID string `json:"user_id"`
	}
	if err := decodeJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	user, err := sale.ParseUserID(req.UserID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	token, exp := s.Signer.Issue(user)
	c.JSON(http.StatusOK, gin.H{"token": token, "user_id": user, "expires_at": exp.Format(time.RFC3339)})
}

func (s *server) listItems(c *gin.Context) {
	views, err := s.Catalog.Items(c.Request.Context())
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := make([]itemJSON, len(views))
	for i, v := range views {
		out[i] = toItemJSON(v)
	}
	c.JSON(http.StatusOK, gin.H{"items": out})
}

func (s *server) itemID(c *gin.Context) (sale.ItemID, bool) {
	id, err := sale.ParseItemID(c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return 0, false
	}
	return id, true
}

func (s *server) getItem(c *gin.Context) {
	id, ok := s.itemID(c)
	if !ok {
		return
	}
	v, err := s.Catalog.Item(c.Request.Context(), id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toItemJSON(v))
}

func (s *server) purchase(c *gin.Context) {
	id, ok := s.itemID(c)
	if !ok {
		s.Metrics.Purchase("invalid_request")
		return
	}
	// The body is optional: only a protected item's purchase needs one,
	// {"ticket": "..."}, so an unprotected purchase reads nothing.
	var req struct {
		Ticket string `json:"ticket"`
	}
	if hasBody(c) {
		if err := decodeJSON(c, &req); err != nil {
			s.Metrics.Purchase(s.writeError(c, err))
			return
		}
	}
	o, err := s.Purchase.BuyWithTicket(c.Request.Context(), userOf(c), id, req.Ticket)
	if err != nil {
		s.Metrics.Purchase(s.writeError(c, err))
		return
	}
	s.Metrics.Purchase("accepted")
	if s.accessLogOn(c) {
		c.Set(orderKey, o.ID)
	}
	c.Header("Location", "/api/v1/orders/"+string(o.ID))
	// Order ids are digits, '-' and hex, so they need no JSON escaping;
	// building the body by hand keeps encoding off the hottest 2xx path.
	c.Data(http.StatusAccepted, jsonContentType, []byte(`{"order_id":"`+string(o.ID)+`","status":"`+string(o.Status)+`"}`))
}

func (s *server) getOrder(c *gin.Context) {
	id, err := sale.ParseOrderID(c.Param("order_id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	o, err := s.Purchase.Order(c.Request.Context(), userOf(c), id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toOrderJSON(o))
}

// itemOrders lists the caller's orders for one item, the queued one
// included: how a buyer whose 202 was lost finds the order they hold.
func (s *server) itemOrders(c *gin.Context) {
	id, ok := s.itemID(c)
	if !ok {
		return
	}
	orders, err := s.Purchase.OrdersFor(c.Request.Context(), userOf(c), id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := make([]orderJSON, len(orders))
	for i, o := range orders {
		out[i] = toOrderJSON(o)
	}
	c.JSON(http.StatusOK, gin.H{"orders": out})
}

// payOrder pays for the caller's order. The body is optional; if sent it is
// {"payment_ref": "..."} and nothing else.
func (s *server) payOrder(c *gin.Context) {
	id, err := sale.ParseOrderID(c.Param("order_id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	var req struct {
		PaymentRef string `json:"payment_ref"`
	}
	if hasBody(c) {
		if err := decodeJSON(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
	}
	ref, err := sale.ParsePaymentRef(req.PaymentRef)
	if err != nil {
		s.writeError(c, err)
		return
	}
	o, err := s.Lifecycle.Pay(c.Request.Context(), userOf(c), id, ref)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toOrderJSON(o))
}

// hasBody reports whether the request carries a body to decode.
func hasBody(c *gin.Context) bool {
	return c.Request.Body != nil && c.Request.Body != http.NoBody && c.Request.ContentLength != 0
}

// cancelOrder cancels the caller's confirmed order; it takes no body.
func (s *server) cancelOrder(c *gin.Context) {
	id, err := sale.ParseOrderID(c.Param("order_id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	o, err := s.Lifecycle.Cancel(c.Request.Context(), userOf(c), id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toOrderJSON(o))
}

func (s *server) createItem(c *gin.Context) {
	var req struct {
		Name         string    `json:"name"`
		Description  string    `json:"description"`
		PriceCents   int64     `json:"price_cents"`
		Stock        int64     `json:"stock"`
		StartsAt     time.Time `json:"starts_at"`
		EndsAt       time.Time `json:"ends_at"`
		PurchaseRate int64     `json:"purchase_rate"`
		// StockBuckets splits a hot item's stock over several Redis
		// slots; absent means 1, and an explicit 0 is refused.
		StockBuckets *int   `json:"stock_buckets"`
		Protection   string `json:"protection"`
		// The waiting room of a queue item.
		AdmitPerSecond int64 `json:"admit_per_second"`
		MaxActive      int64 `json:"max_active"`
	}
	if err := decodeJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	buckets := 1
	if req.StockBuckets != nil {
		buckets = *req.StockBuckets
		if err := sale.CheckStockBuckets(buckets); err != nil {
			s.writeError(c, err)
			return
		}
	}
	prot, err := sale.ParseProtection(req.Protection)
	if err != nil {
		s.writeError(c, err)
		return
	}
	// Like a restock, a create without a key gets one, so that the answer
	// (an error included) tells the client which key to retry with.
	key := c.GetHeader("Idempotency-Key")
	if key == "" {
		key = catalog.NewRestockKey()
	}
	c.Header("Idempotency-Key", key)
	v, err := s.Catalog.CreateOnce(c.Request.Context(), sale.Draft{
		Name: req.Name, Description: req.Description, PriceCents: req.PriceCents, Stock: req.Stock,
		StartsAt: req.StartsAt, EndsAt: req.EndsAt, PurchaseRate: req.PurchaseRate,
		StockBuckets: buckets, Protection: prot,
		AdmitPerSecond: req.AdmitPerSecond, MaxActive: req.MaxActive,
	}, key)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("Location", "/api/v1/items/"+v.Item.ID.String())
	c.JSON(http.StatusCreated, restockJSON{itemJSON: toItemJSON(v), IdempotencyKey: key})
}

func (s *server) patchItem(c *gin.Context) {
	id, ok := s.itemID(c)
	if !ok {
		return
	}
	var req struct {
		Name         *string    `json:"name"`
		Description  *string    `json:"description"`
		PriceCents   *int64     `json:"price_cents"`
		StartsAt     *time.Time `json:"starts_at"`
		EndsAt       *time.Time `json:"ends_at"`
		PurchaseRate *int64     `json:"purchase_rate"`
		Protection   *string    `json:"protection"`
		// The waiting room of a queue item.
		AdmitPerSecond *int64 `json:"admit_per_second"`
		MaxActive      *int64 `json:"max_active"`
	}
	if err := decodeJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	var prot *sale.Protection
	if req.Protection != nil {
		// "" is not a choice in a patch: name the protection wanted.
		p, err := sale.ParseProtection(*req.Protection)
		if err != nil || *req.Protection == "" {
			s.writeError(c, &sale.ValidationError{Field: "protection", Reason: sale.ProtectionChoices})
			return
		}
		prot = &p
	}
	v, err := s.Catalog.Update(c.Request.Context(), id, sale.Patch{
		Name: req.Name, Description: req.Description, PriceCents: req.PriceCents,
		StartsAt: req.StartsAt, EndsAt: req.EndsAt, PurchaseRate: req.PurchaseRate, Protection: prot,
		AdmitPerSecond: req.AdmitPerSecond, MaxActive: req.MaxActive,
	})
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toItemJSON(v))
}

func (s *server) restock(c *gin.Context) {
	id, ok := s.itemID(c)
	if !ok {
		return
	}
	var req struct {
		Add int64 `json:"add"`
	}
	if err := decodeJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	// A restock without a key gets one, so that the answer can tell the
	// client which key to retry with.
	key := c.GetHeader("Idempotency-Key")
	if key == "" {
		key = catalog.NewRestockKey()
	}
	c.Header("Idempotency-Key", key)
	v, err := s.Catalog.Restock(c.Request.Context(), id, req.Add, key)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, restockJSON{itemJSON: toItemJSON(v), IdempotencyKey: key})
}

func (s *server) stats(c *gin.Context) {
	id, ok := s.itemID(c)
	if !ok {
		return
	}
	st, err := s.Catalog.Stats(c.Request.Context(), id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{
		"item_id":          st.ItemID,
		"stock_total":      st.StockTotal,
		"stock_left_redis": st.StockLeftLedger,
		"stock_left_db":    st.StockLeftDB,
		"orders_pending":   st.Pending,
		"orders_confirmed": st.Confirmed,
		"orders_paid":      st.Paid,
		"orders_cancelled": st.Cancelled,
		"orders_expired":   st.Expired,
		"orders_failed":    st.Failed,
		"orders_overdue":   st.Overdue,
		"ledger":           ledgerState(st.LedgerLive),
		"drift":            st.Drift,
		"consistent":       st.Consistent,
	})
}
