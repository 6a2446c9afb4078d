package redisrate

import (
	"context"
	"os"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"seckill/infra/testenv"
)

// TestSharedAcrossInstances: two limiters (two instances) on one Redis share
// each user's budget: together they admit the burst, not twice the burst.
func TestSharedAcrossInstances(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		a := New(rdb, prefix, 1, 5)
		b := New(rdb, prefix, 1, 5)
		ctx := context.Background()
		admitted := 0
		for i := 0; i < 10; i++ {
			for _, l := range []*UserLimiter{a, b} {
				ok, err := l.Allow(ctx, "alice")
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					admitted++
				}
			}
		}
		if admitted != 5 {
			t.Fatalf("20 quick attempts over two instances admitted %d, want the shared burst of 5", admitted)
		}
		if ok, _ := a.Allow(ctx, "bob"); !ok {
			t.Fatal("another user shares alice's budget")
		}
		if s := a.Stats(); s.Refused == 0 || s.Allowed == 0 {
			t.Fatalf("stats = %+v", s)
		}
	}
	t.Run("miniredis", func(t *testing.T) {
		mr := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		defer rdb.Close()
		run(t, rdb, "t")
	})
	t.Run("redis", func(t *testing.T) {
		rdb, prefix := testenv.Redis(t)
		run(t, rdb, prefix)
	})
	t.Run("cluster", func(t *testing.T) {
		rdb, prefix := testenv.RedisCluster(t)
		run(t, rdb, prefix)
	})
}

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopRedisCluster()
	os.Exit(code)
}

// TestRedisDownIsAnError: an unreachable Redis is reported, not admitted or
// refused silently.
func TestRedisDownIsAnError(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	defer rdb.Close()
	mr.Close()
	if _, err := New(rdb, "t", 5, 5).Allow(context.Background(), "alice"); err == nil {
		t.Fatal("no error with Redis down")
	}
}

// TestKeyPatternsAreTheKeysWritten: KeyPatterns names exactly the key a
// check leaves in Redis, library prefix included, so the docs that are
// checked against it name real keys.
func TestKeyPatternsAreTheKeysWritten(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	if _, err := New(rdb, "p", 1, 5).Allow(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	got, want := mr.Keys(), KeyPatterns("p", "alice")
	if len(got) != len(want) || got[0] != want[0] {
		t.Fatalf("keys in Redis %q, KeyPatterns %q", got, want)
	}
}
