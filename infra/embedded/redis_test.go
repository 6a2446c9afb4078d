package embedded_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/infra/embedded"
)

// TestRedisTTLExpiresInRealTime fails if nothing advances miniredis's clock:
// miniredis alone never expires a key.
func TestRedisTTLExpiresInRealTime(t *testing.T) {
	t.Parallel()
	r, err := embedded.StartRedis("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	ctx := context.Background()

	if err := rdb.Set(ctx, "short", "v", 200*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "long", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "forever", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, "short").Val(); n != 1 {
		t.Fatalf("short key gone at once (exists=%d)", n)
	}

	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := rdb.Get(ctx, "short").Result()
		if errors.Is(err, redis.Nil) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("key with a 200ms TTL still present after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := rdb.Exists(ctx, "long", "forever").Val(); n != 2 {
		t.Fatalf("keys with a long or no TTL: exists=%d, want 2", n)
	}
	if ttl := rdb.PTTL(ctx, "long").Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("long key PTTL = %v", ttl)
	}
}

func TestRedisCloseTwice(t *testing.T) {
	t.Parallel()
	r, err := embedded.StartRedis("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := r.Addr()
	r.Close()
	r.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err == nil {
		t.Fatal("ping after Close succeeded")
	}
}
