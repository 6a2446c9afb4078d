package mysqlstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"seckill/domain/sale"
)

func testBlocklist(t *testing.T, b backend) {
	s := b.open(t)
	ctx := context.Background()
	if list, err := s.Blocklist(ctx); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("empty blocklist = %v, %v; want an empty non-nil list", list, err)
	}
	if added, err := s.Block(ctx, "mallory", "  scalper "); err != nil || !added {
		t.Fatalf("block: %v %v", added, err)
	}
	if added, err := s.Block(ctx, "mallory", "again"); err != nil || added {
		t.Fatalf("block again: added=%v err=%v, want false", added, err)
	}
	// User ids are case-sensitive: Mallory is someone else.
	if added, err := s.Block(ctx, "Mallory", ""); err != nil || !added {
		t.Fatalf("block Mallory: %v %v", added, err)
	}
	for _, bad := range []struct {
		user   sale.UserID
		reason string
	}{{"bad user", ""}, {"", ""}, {"eve", strings.Repeat("x", sale.MaxBlockReasonLen+1)}} {
		if _, err := s.Block(ctx, bad.user, bad.reason); !errors.Is(err, sale.ErrInvalid) {
			t.Errorf("Block(%q, %d chars) = %v, want ErrInvalid", bad.user, len(bad.reason), err)
		}
	}
	list, err := s.Blocklist(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("blocklist = %+v, %v", list, err)
	}
	for _, e := range list {
		if e.User == "mallory" && (e.Reason != "scalper" || e.BlockedAt.IsZero()) {
			t.Errorf("mallory's entry %+v: want the first reason, trimmed, and a time", e)
		}
	}
	if removed, err := s.Unblock(ctx, "mallory"); err != nil || !removed {
		t.Fatalf("unblock: %v %v", removed, err)
	}
	if removed, err := s.Unblock(ctx, "mallory"); err != nil || removed {
		t.Fatalf("unblock again: removed=%v err=%v, want false", removed, err)
	}
	if list, _ := s.Blocklist(ctx); len(list) != 1 || list[0].User != "Mallory" {
		t.Fatalf("after unblock: %+v", list)
	}
}

func testProtection(t *testing.T, b backend) {
	s := b.open(t)
	ctx := context.Background()
	it := newItem(t, s, 5)
	if it.Protection != sale.ProtectionNone {
		t.Fatalf("an item created without protection reads back %q, want none", it.Protection)
	}
	pow := sale.ProtectionPoW
	got, err := s.UpdateItem(ctx, it.ID, func(i *sale.Item) error { return i.Apply(sale.Patch{Protection: &pow}) })
	if err != nil || got.Protection != sale.ProtectionPoW {
		t.Fatalf("update to pow: %+v %v", got, err)
	}
	if read, err := s.Item(ctx, it.ID); err != nil || read.Protection != sale.ProtectionPoW {
		t.Fatalf("read back: %q %v", read.Protection, err)
	}
	bad := sale.Protection("captcha")
	if _, err := s.UpdateItem(ctx, it.ID, func(i *sale.Item) error { return i.Apply(sale.Patch{Protection: &bad}) }); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("bogus protection: %v, want ErrInvalid", err)
	}
}
