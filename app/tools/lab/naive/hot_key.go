package naive

// WRONG ON PURPOSE: lacks the hot item's token bucket and the local
// sold-out flag; the real ones are shield.Shield's ItemExhausted, AllowItem,
// SoldOut and MarkSoldOut (app/shield/shield.go), asked by purchase.Buy
// (app/purchase/purchase.go) before the one Redis round trip.

import (
	"time"

	"seckill/domain/sale"
)

// userGate is the part of the shield this naive guard keeps: the in-flight
// bound and the per-user bucket, so that the lab switches off only the
// hot-key protections.
type userGate interface {
	Enter() (release func(), err error)
	AllowUser(user sale.UserID, now time.Time) error
}

// HotKeyShield sends every purchase that passes the user's bucket on to
// Redis: a thousand buyers clicking on one item are a thousand round trips
// to the one key that holds its stock, before and after it sold out. It
// implements the purchase's Shield port.
type HotKeyShield struct{ users userGate }

// NewHotKeyGuard keeps users' in-flight bound and per-user bucket.
func NewHotKeyGuard(users userGate) *HotKeyShield { return &HotKeyShield{users: users} }

// Enter is the kept in-flight bound.
func (g *HotKeyShield) Enter() (func(), error) { return g.users.Enter() }

// AllowUser is the kept per-user bucket.
func (g *HotKeyShield) AllowUser(user sale.UserID, now time.Time) error {
	return g.users.AllowUser(user, now)
}

// SoldOut never knows: every attempt asks Redis.
func (g *HotKeyShield) SoldOut(sale.ItemID, time.Time) bool { return false }

// MarkSoldOut remembers nothing.
func (g *HotKeyShield) MarkSoldOut(sale.ItemID, int64, time.Time) {}

// ItemExhausted never refuses: there is no budget for the hot key.
func (g *HotKeyShield) ItemExhausted(sale.ItemID, float64, time.Time) bool { return false }

// AllowItem lets everything through.
func (g *HotKeyShield) AllowItem(sale.ItemID, float64, time.Time) error { return nil }
