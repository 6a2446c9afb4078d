package mysqlstore_test

import (
	"errors"
	"sync"
	"testing"

	"seckill/domain/sale"
)

// TestKeyedCreate: a keyed create stores one item per key however many
// times and however concurrently it is sent, hides it from Item and Items
// until MarkItemOpened, and ItemByCreateKey reads it back either way.
func TestKeyedCreate(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := b.open(t)
			ctx := t.Context()
			it, err := sale.NewItem(sale.Draft{Name: "Keyed", PriceCents: 5, Stock: 3, StartsAt: base, EndsAt: base.Add(1e9 * 3600)})
			if err != nil {
				t.Fatal(err)
			}
			const racers = 8
			ids := make([]sale.ItemID, racers)
			errs := make([]error, racers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range racers {
				wg.Go(func() {
					<-start
					got, opened, err := s.CreateItemKeyed(ctx, it, "admin-key-1")
					ids[i], errs[i] = got.ID, err
					if opened {
						errs[i] = errors.New("a fresh keyed create came back opened")
					}
				})
			}
			close(start)
			wg.Wait()
			for i := range racers {
				if errs[i] != nil || ids[i] != ids[0] || ids[0] == 0 {
					t.Fatalf("racer %d: id %d err %v; want every racer to get item %d", i, ids[i], errs[i], ids[0])
				}
			}
			if _, err := s.Item(ctx, ids[0]); !errors.Is(err, sale.ErrNotFound) {
				t.Fatalf("Item of an unopened create = %v, want ErrNotFound", err)
			}
			if list, err := s.Items(ctx); err != nil || len(list) != 0 {
				t.Fatalf("Items = %d items, %v; want none before the create is opened", len(list), err)
			}
			if got, opened, err := s.ItemByCreateKey(ctx, "admin-key-1"); err != nil || opened || got.ID != ids[0] {
				t.Fatalf("ItemByCreateKey = %d opened=%v %v", got.ID, opened, err)
			}
			if _, _, err := s.ItemByCreateKey(ctx, "no-such-key"); !errors.Is(err, sale.ErrNotFound) {
				t.Fatalf("ItemByCreateKey(unknown) = %v, want ErrNotFound", err)
			}
			for range 2 {
				if err := s.MarkItemOpened(ctx, ids[0]); err != nil {
					t.Fatalf("MarkItemOpened: %v", err)
				}
			}
			if err := s.MarkItemOpened(ctx, ids[0]+100); !errors.Is(err, sale.ErrNotFound) {
				t.Fatalf("MarkItemOpened(unknown) = %v, want ErrNotFound", err)
			}
			if got, err := s.Item(ctx, ids[0]); err != nil || got.Name != "Keyed" {
				t.Fatalf("Item after opening = %+v, %v", got, err)
			}
			if _, opened, err := s.CreateItemKeyed(ctx, it, "admin-key-1"); err != nil || !opened {
				t.Fatalf("repeat after opening: opened=%v %v", opened, err)
			}
			if list, _ := s.Items(ctx); len(list) != 1 {
				t.Fatalf("Items = %d, want 1", len(list))
			}
			// Items made without a key are opened at once, as before.
			plain := newItem(t, s, 2)
			if _, err := s.Item(ctx, plain.ID); err != nil {
				t.Fatalf("Item of an unkeyed create: %v", err)
			}
		})
	}
}
