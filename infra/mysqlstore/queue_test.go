package mysqlstore_test

import (
	"testing"
	"time"

	"seckill/domain/sale"
)

// TestQueueFieldsRoundTrip: a queue item's waiting room (migration 00007)
// is stored on create and on update, on SQLite and MySQL alike.
func TestQueueFieldsRoundTrip(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			ctx := t.Context()
			it, err := sale.NewItem(sale.Draft{
				Name: "Queued", PriceCents: 100, Stock: 5, StartsAt: base, EndsAt: base.Add(time.Hour),
				Protection: sale.ProtectionQueue, AdmitPerSecond: 200, MaxActive: 50,
			})
			if err != nil {
				t.Fatal(err)
			}
			created, err := s.CreateItem(ctx, it)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Item(ctx, created.ID)
			if err != nil || got.Protection != sale.ProtectionQueue || got.AdmitPerSecond != 200 || got.MaxActive != 50 {
				t.Fatalf("created: %+v %v, want queue at 200/s, max 50", got, err)
			}
			rate, maxActive := int64(30), int64(0)
			if _, err := s.UpdateItem(ctx, created.ID, func(cur *sale.Item) error {
				return cur.Apply(sale.Patch{AdmitPerSecond: &rate, MaxActive: &maxActive})
			}); err != nil {
				t.Fatal(err)
			}
			got, err = s.Item(ctx, created.ID)
			if err != nil || got.AdmitPerSecond != 30 || got.MaxActive != 0 {
				t.Fatalf("updated: %+v %v, want 30/s, max 0", got, err)
			}
		})
	}
}
