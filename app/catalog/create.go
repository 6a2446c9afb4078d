package catalog

import (
	"context"
	"errors"
	"fmt"

	"seckill/domain/sale"
)

// errNotCreated is the reason given when a keyed create did not finish: the
// item exists only unopened, which no shopper, cache or reconciler sees.
var errNotCreated = errors.New("the sale is not on sale; retry with the same Idempotency-Key to finish creating it")

// CreateOnce creates a sale at most once per key (the admin's
// Idempotency-Key, rules of sale.ParseRestockKey). The item is stored
// unopened, its stock opened in the ledger, then the item marked opened:
// only then does any reader, the reconciler included, see it. So a create
// that answers an error never goes on sale by itself; a retry with the same
// key finishes it, and a retry of a create that succeeded returns the same
// item. An ambiguous step (a commit whose answer was lost) is read back by
// key, never guessed. The same key with a different draft is ErrInvalid.
func (s *Service) CreateOnce(ctx context.Context, d sale.Draft, key string) (View, error) {
	if s.d.Creates == nil {
		return s.createUnkeyed(ctx, d)
	}
	if _, err := sale.ParseRestockKey(key); err != nil {
		return View{}, err
	}
	want, err := sale.NewItem(d)
	if err != nil {
		return View{}, err
	}
	it, opened, err := s.insertKeyed(ctx, want, key)
	if err != nil {
		return View{}, err
	}
	if !sameSale(it, want) {
		return View{}, &sale.ValidationError{Field: "Idempotency-Key", Reason: fmt.Sprintf("was already used to create item %d with other values; use a new key for a new sale", it.ID)}
	}
	if opened {
		return s.fresh(it), nil
	}
	// Open refreshes a sale that a previous attempt opened, so a retry
	// after a lost answer repeats it safely.
	if err := s.d.Ledger.Open(ctx, it); err != nil {
		return View{}, unavailable("open stock", errors.Join(errNotCreated, err))
	}
	if err := s.d.Creates.MarkItemOpened(ctx, it.ID); err != nil {
		// The mark may have committed with its answer lost: read it back.
		_, ok, rerr := s.d.Creates.ItemByCreateKey(context.WithoutCancel(ctx), key)
		if rerr != nil || !ok {
			return View{}, unavailable("open item", errors.Join(errNotCreated, err))
		}
	}
	// The sale is live and visible: the commit point. The list and any
	// negative entry for this id are wrong everywhere now.
	s.invalidate(ctx, it.ID)
	return s.fresh(it), nil
}

// insertKeyed stores the unopened item, or finds the one the key made. A
// failed insert is read back by key: the commit may have happened with its
// answer lost.
func (s *Service) insertKeyed(ctx context.Context, it sale.Item, key string) (sale.Item, bool, error) {
	got, opened, err := s.d.Creates.CreateItemKeyed(ctx, it, key)
	if err == nil || errors.Is(err, sale.ErrInvalid) || errors.Is(err, context.Canceled) {
		return got, opened, err
	}
	got, opened, rerr := s.d.Creates.ItemByCreateKey(context.WithoutCancel(ctx), key)
	switch {
	case rerr == nil:
		return got, opened, nil
	case errors.Is(rerr, sale.ErrNotFound):
		return sale.Item{}, false, unavailable("create item", err)
	default:
		// Unknown whether the insert committed; either way nothing is on
		// sale, and the retry this asks for settles it.
		return sale.Item{}, false, unavailable("create item", errors.Join(errNotCreated, err, rerr))
	}
}

// sameSale reports whether a stored item is the sale the draft describes,
// to the millisecond the database keeps.
func sameSale(got, want sale.Item) bool {
	return got.Name == want.Name && got.Description == want.Description &&
		got.PriceCents == want.PriceCents && got.StockTotal == want.StockTotal &&
		got.StartsAt.UnixMilli() == want.StartsAt.UnixMilli() && got.EndsAt.UnixMilli() == want.EndsAt.UnixMilli() &&
		got.PurchaseRate == want.PurchaseRate && got.Buckets() == want.Buckets() &&
		got.Protection.OrNone() == want.Protection.OrNone() &&
		got.AdmitPerSecond == want.AdmitPerSecond && got.MaxActive == want.MaxActive
}
