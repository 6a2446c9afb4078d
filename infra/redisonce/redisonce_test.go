package redisonce

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"seckill/infra/testenv"
)

// TestOnce: of 50 callers of one mark at once exactly one is first, on
// miniredis and on the real Redis; the mark expires with its TTL; and a
// Redis that does not answer is an error, never a "first".
func TestOnce(t *testing.T) {
	t.Run("miniredis", func(t *testing.T) {
		mr := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		defer rdb.Close()
		run(t, New(rdb, "t"+testenv.Nonce()), func(d time.Duration) { mr.FastForward(d) })
	})
	t.Run("redis", func(t *testing.T) {
		rdb, prefix := testenv.Redis(t)
		run(t, New(rdb, prefix), time.Sleep)
	})
	t.Run("down", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
		defer rdb.Close()
		if first, err := New(rdb, "x").Once(context.Background(), "m", time.Second); err == nil || first {
			t.Fatalf("unreachable Redis: first=%v err=%v", first, err)
		}
	})
}

func run(t *testing.T, m *Marks, wait func(time.Duration)) {
	ctx := context.Background()
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		first atomic.Int64
	)
	for range 50 {
		wg.Go(func() {
			<-start
			ok, err := m.Once(ctx, "challenge:abc", 300*time.Millisecond)
			if err != nil {
				t.Error(err)
			}
			if ok {
				first.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if first.Load() != 1 {
		t.Fatalf("%d callers were first, want 1", first.Load())
	}
	if ok, _ := m.Once(ctx, "challenge:other", time.Second); !ok {
		t.Fatal("another mark is not independent")
	}
	wait(400 * time.Millisecond)
	if ok, err := m.Once(ctx, "challenge:abc", time.Second); err != nil || !ok {
		t.Fatalf("after its TTL the mark should be gone: first=%v err=%v", ok, err)
	}
}
