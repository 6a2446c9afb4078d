package breaker

import (
	"context"
	"errors"
	"sync"

	"seckill/domain/sale"
)

// NodeBreakers is one breaker per Redis Cluster master, made the first
// time a call goes to that master. The stock ledger's purchases pass the
// breaker of the master that holds their stock bucket, so a master that
// hangs or dies refuses only the purchases whose bucket lives on it;
// splitting a hot item's stock over masters is meant to isolate exactly
// that failure, and a breaker shared by the whole cluster undid it.
type NodeBreakers struct {
	name   string
	s      Settings
	health *RedisHealth

	mu sync.Mutex
	m  map[string]*Breaker
}

// NewNodeBreakers returns an empty set; each master's breaker gets s, and,
// if health is not nil, that master's own round trips as its Health.
func NewNodeBreakers(name string, s Settings, health *RedisHealth) *NodeBreakers {
	return &NodeBreakers{name: name, s: s, health: health, m: map[string]*Breaker{}}
}

// For returns the breaker of the master at node, made on first use.
func (n *NodeBreakers) For(node string) *Breaker {
	n.mu.Lock()
	defer n.mu.Unlock()
	if b, ok := n.m[node]; ok {
		return b
	}
	s := n.s
	if n.health != nil {
		s.Health = n.health.Node(node)
	}
	b := NewBreaker(n.name+" "+node, s)
	n.m[node] = b
	return b
}

// Down reports whether the breaker of the master at node is not closed:
// calls there are refused or only probing. A master never called is up.
func (n *NodeBreakers) Down(node string) bool {
	n.mu.Lock()
	b, ok := n.m[node]
	n.mu.Unlock()
	return ok && b.StateValue() != 0
}

// Name is the set's name, the backend label of its metrics.
func (n *NodeBreakers) Name() string { return n.name }

func (n *NodeBreakers) each(f func(*Breaker)) {
	n.mu.Lock()
	bs := make([]*Breaker, 0, len(n.m))
	for _, b := range n.m {
		bs = append(bs, b)
	}
	n.mu.Unlock()
	for _, b := range bs {
		f(b)
	}
}

// StateValue is the worst state among the masters' breakers (0 closed, 1
// half-open, 2 open), for a gauge.
func (n *NodeBreakers) StateValue() float64 {
	var worst float64
	n.each(func(b *Breaker) { worst = max(worst, b.StateValue()) })
	return worst
}

// State is StateValue as a word: "closed", "half-open" or "open".
func (n *NodeBreakers) State() string {
	return [...]string{"closed", "half-open", "open"}[int(n.StateValue())]
}

// Stats sums the masters' breakers' counters.
func (n *NodeBreakers) Stats() Stats {
	var sum Stats
	n.each(func(b *Breaker) {
		st := b.Stats()
		sum.Rejected += st.Rejected
		sum.Failures += st.Failures
		sum.Opened += st.Opened
	})
	return sum
}

// Router is what a ledger on a Redis Cluster tells the guard: which master
// holds an order's bucket, which master holds each bucket of an item, and
// a reservation in exactly the bucket an order's id names, which never
// waits on another bucket (redisstock.Store implements it). On a single
// Redis the nodes are "".
type Router interface {
	OrderNode(ctx context.Context, id sale.OrderID) string
	BucketNodes(ctx context.Context, id sale.ItemID) ([]string, error)
	ReserveIn(ctx context.Context, o sale.Order) (sale.Reservation, error)
}

// reserveByNode is Reserve on a Redis Cluster: through the breaker of the
// master that holds the order's bucket. If that breaker refuses the call
// (nothing was sent), the order is placed in another bucket of the item
// whose master's breaker is closed and that has stock, trying them in a
// fixed order from the home bucket, so a buyer who retries lands in the
// same bucket and its one-order record answers the retry. The answer
// then carries the new id (Reservation.Placed). If no other bucket can
// take it, the refusal stands: the item is not known to be sold out, since
// the failing master's bucket may hold stock.
func (l *Ledger) reserveByNode(ctx context.Context, o sale.Order) (sale.Reservation, error) {
	node := l.router.OrderNode(ctx, o.ID)
	res, err := reserveGuarded(l.nodes.For(node), ctx, func(ctx context.Context) (sale.Reservation, error) { return l.next.Reserve(ctx, o) })
	if !errors.Is(err, ErrOpen) {
		return res, err
	}
	nodes, nerr := l.router.BucketNodes(ctx, o.ItemID)
	if nerr != nil || len(nodes) < 2 {
		return res, err
	}
	home := o.ID.Bucket()
	for i := 1; i < len(nodes); i++ {
		b := (home + i) % len(nodes)
		if nodes[b] == node || l.nodes.Down(nodes[b]) {
			continue
		}
		moved := o
		moved.ID = sale.NewBucketOrderID(o.ItemID, b, o.CreatedAt)
		r, rerr := reserveGuarded(l.nodes.For(nodes[b]), ctx, func(ctx context.Context) (sale.Reservation, error) { return l.router.ReserveIn(ctx, moved) })
		if rerr != nil {
			// A refusal sent nothing: the next bucket may still serve.
			// Any other error may have reserved: it is the answer.
			if errors.Is(rerr, ErrOpen) {
				continue
			}
			return r, rerr
		}
		switch r.Outcome {
		case sale.OutcomeSoldOut:
			continue
		case sale.Accepted:
			r.Placed = moved.ID
		}
		return r, nil
	}
	return res, err
}
