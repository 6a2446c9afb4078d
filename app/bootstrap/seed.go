package bootstrap

import (
	"context"
	"fmt"
	"strings"
	"time"

	"seckill/domain/sale"
)

// seedDemo creates two sales when the catalog is empty: one open now and one
// that opens a minute after start, so a visitor sees both a live sale and a
// countdown. An existing catalog is left alone, so restarts do not pile up
// demo items.
func (m *Main) seedDemo(ctx context.Context) error {
	// Several replicas may start together; only the one holding this lock
	// seeds, and it checks for an empty catalog while holding it.
	lock := seedLockKey(m.Config.RedisPrefix)
	ok, err := m.rdb.SetNX(ctx, lock, m.Config.InstanceID, 30*time.Second).Result()
	if err != nil {
		return err
	}
	if !ok {
		m.Log.Info("another instance is seeding the demo; skipped")
		return nil
	}
	defer m.rdb.Del(context.WithoutCancel(ctx), lock)
	items, err := m.store.Items(ctx)
	if err != nil {
		return err
	}
	if len(items) > 0 {
		m.Log.Info("catalog not empty; demo seed skipped", "items", len(items))
		return nil
	}
	now := time.Now().UTC()
	drafts := []sale.Draft{
		{
			Name:        "Mechanical keyboard",
			Description: "Hot-swappable, 75% layout. One per customer.",
			PriceCents:  4999, Stock: 100,
			StartsAt: now.Add(-time.Minute), EndsAt: now.Add(24 * time.Hour),
			// The demo shows the fair sale: the page solves a proof of
			// work for a ticket before it buys (docs/FAIRNESS.md).
			Protection: sale.ProtectionPoW,
		},
		{
			Name:        "Noise-cancelling headphones",
			Description: "Opens one minute after start. One per customer.",
			PriceCents:  8999, Stock: 50,
			StartsAt: now.Add(time.Minute), EndsAt: now.Add(24 * time.Hour),
			Protection: sale.ProtectionPoW,
		},
	}
	for _, d := range drafts {
		v, err := m.Catalog.Create(ctx, d)
		if err != nil {
			return err
		}
		m.Log.Info("seeded demo sale", "item_id", v.Item.ID, "name", v.Item.Name, "stock", v.Item.StockTotal, "starts_at", v.Item.StartsAt)
	}
	return nil
}

// Banner is what `seckill all` prints for a person at start-up: where to
// look, the admin token, and a curl sequence that buys something.
func (m *Main) Banner() string {
	u := m.URL()
	var b strings.Builder
	fmt.Fprintf(&b, "\n  seckill is running\n\n")
	fmt.Fprintf(&b, "  Sale page:    %s/\n", u)
	fmt.Fprintf(&b, "  Admin page:   %s/admin\n", u)
	fmt.Fprintf(&b, "  Dashboard:    %s/dashboard   (live charts; open it during a spike)\n", u)
	fmt.Fprintf(&b, "  Admin token:  %s\n", m.AdminToken)
	fmt.Fprintf(&b, "  API docs:     %s/openapi.yaml   metrics: %s/metrics\n\n", u, u)
	// The demo sales are proof-of-work protected, which a browser solves
	// but curl cannot; so the terminal recipe opens a plain sale with the
	// admin token first. Literal times keep it a copy-and-paste that works
	// with any date(1). TestBannerRecipeBuys runs these lines.
	now := time.Now().UTC()
	fmt.Fprintf(&b, "  Buy from a terminal. The demo sales need a proof of work, which the sale page\n")
	fmt.Fprintf(&b, "  solves; curl cannot, so open an unprotected sale first (docs/FAIRNESS.md):\n\n")
	fmt.Fprintf(&b, "    ITEM=$(curl -s -X POST %s/api/v1/admin/items -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' "+
		"-d '{\"name\":\"Terminal demo\",\"price_cents\":1999,\"stock\":10,\"starts_at\":\"%s\",\"ends_at\":\"%s\",\"protection\":\"none\"}' | sed -E 's/^[{]\"id\":([0-9]+).*/\\1/'); echo item $ITEM\n",
		u, m.AdminToken, now.Add(-time.Minute).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339))
	fmt.Fprintf(&b, "    TOKEN=$(curl -s -X POST %s/api/v1/login -H 'Content-Type: application/json' -d '{\"user_id\":\"alice\"}' | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')\n", u)
	fmt.Fprintf(&b, "    ORDER=$(curl -s -X POST %s/api/v1/items/$ITEM/purchase -H \"Authorization: Bearer $TOKEN\" | sed -E 's/.*\"order_id\":\"([^\"]+)\".*/\\1/'); echo $ORDER\n", u)
	fmt.Fprintf(&b, "    curl -s %s/api/v1/orders/$ORDER -H \"Authorization: Bearer $TOKEN\"\n\n", u)
	fmt.Fprintf(&b, "  Press Ctrl+C to stop.\n")
	return b.String()
}
