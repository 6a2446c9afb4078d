package lifecycle

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"seckill/domain/sale"
	"seckill/infra/mysqlstore"
	"seckill/infra/testenv"
)

// errConnLost is what a driver returns when the connection died under a
// statement: the statement may or may not have committed.
var errConnLost = errors.New("invalid connection")

// lostAck is a book whose first Pay loses its answer, as a request deadline
// or a dropped connection does: the update runs (commit) or not, then the
// request's context ends and Pay fails. A read on an ended context fails,
// as a real driver's does, so the outcome can only be learnt on a context
// that is not the request's.
type lostAck struct {
	book
	commit bool       // the lost update did commit
	before func()     // runs in place of the lost update, e.g. a cancel that wins
	cancel func()     // ends the request's context
	mu     sync.Mutex // guards lost
	lost   bool       // the first Pay has been lost
}

func (b *lostAck) Pay(ctx context.Context, id sale.OrderID, user sale.UserID, ref string, at time.Time) (sale.Order, bool, error) {
	b.mu.Lock()
	first := !b.lost
	b.lost = true
	b.mu.Unlock()
	if !first {
		return b.book.Pay(ctx, id, user, ref, at)
	}
	if b.before != nil {
		b.before()
	}
	if b.commit {
		if _, applied, err := b.book.Pay(ctx, id, user, ref, at); err != nil || !applied {
			panic("the lost update did not apply: the test is wrong")
		}
	}
	b.cancel()
	return sale.Order{}, false, errConnLost
}

func (b *lostAck) Order(ctx context.Context, id sale.OrderID) (sale.Order, error) {
	if err := ctx.Err(); err != nil {
		return sale.Order{}, err
	}
	return b.book.Order(ctx, id)
}

// lostAckStore is one store the lost-acknowledgement test runs on: a book
// holding one confirmed order of user, payable now, and a way to cancel it.
type lostAckStore struct {
	name string
	open func(t *testing.T, user sale.UserID) (book, sale.Order)
}

var lostAckStores = []lostAckStore{
	{"fake", func(t *testing.T, user sale.UserID) (book, sale.Order) {
		b := newBook()
		return b, b.confirm(string(user), time.Now().Add(time.Hour))
	}},
	{"sqlite", func(t *testing.T, user sale.UserID) (book, sale.Order) {
		return confirmedInStore(t, mysqlstore.SQLite, filepath.Join(t.TempDir(), "seckill.db"), user)
	}},
	{"mysql", func(t *testing.T, user sale.UserID) (book, sale.Order) {
		return confirmedInStore(t, mysqlstore.MySQL, testenv.MySQLDSN(t), user)
	}},
}

// confirmedInStore opens a fresh, migrated database and confirms one order
// of user in it.
func confirmedInStore(t *testing.T, d mysqlstore.Dialect, dsn string, user sale.UserID) (book, sale.Order) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := mysqlstore.Open(ctx, d, dsn, mysqlstore.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	it, err := sale.NewItem(sale.Draft{Name: "Widget", Description: "lost ack", PriceCents: 100, Stock: 5,
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour), PurchaseRate: 50})
	if err != nil {
		t.Fatal(err)
	}
	if it, err = s.CreateItem(ctx, it); err != nil {
		t.Fatal(err)
	}
	o := sale.NewOrder(it, user, time.Now())
	if n, _, err := s.Confirm(ctx, []sale.Order{o}); err != nil || n != 1 {
		t.Fatalf("Confirm = %d, %v", n, err)
	}
	if o, err = s.Order(ctx, o.ID); err != nil || o.Status != sale.OrderConfirmed {
		t.Fatalf("confirmed order = %+v, %v", o, err)
	}
	return s, o
}

// TestPayLostAcknowledgement: the payment's update committed but its
// answer was lost (the request's context ended, the connection dropped).
// Pay must not refund a charge whose order ended paid by it: it reads the
// order back on a context of its own and answers paid. The same when the
// lost update never reached the database (Pay finishes it with the same
// charge), and a charge is still refunded when the order was cancelled
// meanwhile. Run on the fake, SQLite and MariaDB; on the code before
// settlePay the first two cases refund a charge and answer 503.
func TestPayLostAcknowledgement(t *testing.T) {
	cases := []struct {
		name       string
		commit     bool
		cancelWins bool
		want       sale.OrderStatus
		wantErr    error
		refunds    int
	}{
		{"committed", true, false, sale.OrderPaid, nil, 0},
		{"not sent", false, false, sale.OrderPaid, nil, 0},
		{"cancelled meanwhile", false, true, sale.OrderCancelled, sale.ErrPaymentWindowClosed, 1},
	}
	for _, st := range lostAckStores {
		for _, c := range cases {
			t.Run(st.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				const user = sale.UserID("payer")
				inner, o := st.open(t, user)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				b := &lostAck{book: inner, commit: c.commit, cancel: cancel}
				if c.cancelWins {
					b.before = func() {
						if _, ok, err := inner.Cancel(context.Background(), o.ID, user, time.Now()); err != nil || !ok {
							t.Errorf("the cancel that should win: %v, %v", ok, err)
						}
					}
				}
				pay := &memPayments{}
				svc := New(Deps{Book: b, Pending: memPending{}, Ledger: &memLedger{returned: map[sale.OrderID]bool{}}, Payments: pay, Log: quiet})
				got, err := svc.Pay(ctx, user, o.ID, "ref-lost")
				if (c.wantErr == nil && err != nil) || !errors.Is(err, c.wantErr) {
					t.Fatalf("Pay = %+v, %v; want %s and %v", got, err, c.want, c.wantErr)
				}
				final, rerr := inner.Order(context.Background(), o.ID)
				if rerr != nil || final.Status != c.want || got.Status != c.want {
					t.Fatalf("order ended %s (answered %s), %v; want %s", final.Status, got.Status, rerr, c.want)
				}
				if c.want == sale.OrderPaid && final.PaymentRef != "ref-lost" {
					t.Fatalf("paid with %q, want the charge ref-lost", final.PaymentRef)
				}
				if pay.charges != 1 || pay.refunds != c.refunds {
					t.Fatalf("%d charges, %d refunds; want 1 and %d (a paid order's charge is never refunded)", pay.charges, pay.refunds, c.refunds)
				}
			})
		}
	}
}
