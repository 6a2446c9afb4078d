package sale

// Notifier tells every instance of a deployment what one of them learned,
// so each can answer the next buyer without a round trip: an item sold out,
// units came back, a user was blocked or unblocked. It is the one port for
// that news; app/broadcast implements it on the Redis bus.
//
// Delivery is best effort and never blocks the caller. No invariant rests
// on it: a lost sold-out costs a round trip, a lost stock-back is bounded by
// the sold-out flag's TTL, a lost block by the blocklist's reload.
type Notifier interface {
	// SoldOut says item sold out at stock generation gen.
	SoldOut(item ItemID, gen int64)
	// StockBack says units of item came back (a cancel, an expiry, a failed
	// order, a restock or a repair) at generation gen. It is the only name
	// for that event.
	StockBack(item ItemID, gen int64)
	// Blocked says user was put on (true) or taken off (false) the
	// blocklist.
	Blocked(user UserID, blocked bool)
}
