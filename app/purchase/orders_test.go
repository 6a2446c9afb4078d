package purchase

import (
	"context"
	"errors"
	"slices"
	"testing"

	"seckill/app/shield"
	"seckill/domain/sale"
)

// orderFakes is the order side of the use case: the database's decided
// orders, the ledger's queued ones and its one-order-per-user records.
// settleOnLookup moves the record's order into the database as it is
// looked up, as a worker confirming it between the two reads would.
type orderFakes struct {
	decided        []sale.Order
	queued         map[sale.OrderID]sale.Order
	records        map[sale.UserID]sale.OrderID
	bookErr        error
	ledgerErr      error
	settleOnLookup bool
}

func (f *orderFakes) Order(_ context.Context, id sale.OrderID) (sale.Order, error) {
	for _, o := range f.decided {
		if o.ID == id {
			return o, nil
		}
	}
	return sale.Order{}, sale.ErrOrderNotFound
}

func (f *orderFakes) OrdersOf(_ context.Context, item sale.ItemID, user sale.UserID) ([]sale.Order, error) {
	if f.bookErr != nil {
		return nil, f.bookErr
	}
	out := []sale.Order{}
	for _, o := range slices.Backward(f.decided) {
		if o.ItemID == item && o.UserID == user {
			out = append(out, o)
		}
	}
	return out, nil
}

func (f *orderFakes) BuyerOrder(_ context.Context, _ sale.ItemID, user sale.UserID) (sale.OrderID, error) {
	if f.ledgerErr != nil {
		return "", f.ledgerErr
	}
	id, ok := f.records[user]
	if !ok {
		return "", sale.ErrOrderNotFound
	}
	return id, nil
}

func (f *orderFakes) Lookup(_ context.Context, id sale.OrderID) (sale.Order, error) {
	o, ok := f.queued[id]
	if !ok {
		return sale.Order{}, sale.ErrOrderNotFound
	}
	if f.settleOnLookup {
		delete(f.queued, id)
		o.Status = sale.OrderConfirmed
		f.decided = append(f.decided, o)
		return sale.Order{}, sale.ErrOrderNotFound
	}
	return o, nil
}

func newOrdersService(f *orderFakes) *Service {
	open := sale.Item{ID: 1, Name: "open", PriceCents: 500, StartsAt: t0.Add(-1), EndsAt: t0.Add(1)}
	return New(Deps{
		Items: items{1: open}, Ledger: &fakeLedger{}, Queue: &queue{}, Shield: shield.New(shield.Options{}),
		Pending: f, Book: f, Buyers: f,
	})
}

func ids(os []sale.Order) []sale.OrderID {
	out := make([]sale.OrderID, len(os))
	for i, o := range os {
		out[i] = o.ID
	}
	return out
}

func TestOrdersFor(t *testing.T) {
	t.Parallel()
	it := sale.Item{ID: 1, PriceCents: 500}
	failed := sale.NewOrder(it, "alice", t0)
	failed.Status = sale.OrderFailed
	queued := sale.NewOrder(it, "alice", t0.Add(1))
	bobs := sale.NewOrder(it, "bob", t0)
	bobs.Status = sale.OrderConfirmed
	ctx := context.Background()

	t.Run("the queued order first, then the decided ones", func(t *testing.T) {
		f := &orderFakes{decided: []sale.Order{failed, bobs}, queued: map[sale.OrderID]sale.Order{queued.ID: queued},
			records: map[sale.UserID]sale.OrderID{"alice": queued.ID, "bob": bobs.ID}}
		got, err := newOrdersService(f).OrdersFor(ctx, "alice", 1)
		if err != nil || !slices.Equal(ids(got), []sale.OrderID{queued.ID, failed.ID}) || got[0].Status != sale.OrderQueued {
			t.Fatalf("OrdersFor(alice) = %+v, %v; want the queued %s, then the failed %s", got, err, queued.ID, failed.ID)
		}
		got, err = newOrdersService(f).OrdersFor(ctx, "bob", 1)
		if err != nil || !slices.Equal(ids(got), []sale.OrderID{bobs.ID}) {
			t.Fatalf("OrdersFor(bob) = %+v, %v; want his confirmed order once", got, err)
		}
		got, err = newOrdersService(f).OrdersFor(ctx, "carol", 1)
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("OrdersFor(carol) = %#v, %v; want an empty list", got, err)
		}
	})
	t.Run("confirmed between the two reads", func(t *testing.T) {
		f := &orderFakes{queued: map[sale.OrderID]sale.Order{queued.ID: queued},
			records: map[sale.UserID]sale.OrderID{"alice": queued.ID}, settleOnLookup: true}
		got, err := newOrdersService(f).OrdersFor(ctx, "alice", 1)
		if err != nil || !slices.Equal(ids(got), []sale.OrderID{queued.ID}) || got[0].Status != sale.OrderConfirmed {
			t.Fatalf("OrdersFor = %+v, %v; want the order as the database confirmed it", got, err)
		}
	})
	t.Run("someone else's order behind a record is not shown", func(t *testing.T) {
		f := &orderFakes{queued: map[sale.OrderID]sale.Order{bobs.ID: bobs},
			records: map[sale.UserID]sale.OrderID{"alice": bobs.ID}}
		got, err := newOrdersService(f).OrdersFor(ctx, "alice", 1)
		if err != nil || len(got) != 0 {
			t.Fatalf("OrdersFor = %+v, %v; want nothing of bob's", got, err)
		}
	})
	t.Run("unknown item", func(t *testing.T) {
		if _, err := newOrdersService(&orderFakes{}).OrdersFor(ctx, "alice", 404); !errors.Is(err, sale.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("a backend that does not answer", func(t *testing.T) {
		down := errors.New("dial tcp: connection refused")
		for name, f := range map[string]*orderFakes{"database": {bookErr: down}, "ledger": {ledgerErr: down}} {
			if got, err := newOrdersService(f).OrdersFor(ctx, "alice", 1); !errors.Is(err, ErrUnavailable) || got != nil {
				t.Errorf("%s down: %+v, %v; want ErrUnavailable and no partial list", name, got, err)
			}
		}
	})
}
