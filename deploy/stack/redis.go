package stack

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/redis/go-redis/v9"
)

// dropRedisPrefix deletes every key of a run's own prefix (the stack made
// it up, so no one else has keys under it), a batch at a time with SCAN:
// never a FLUSH, since the Redis is the machine's and shared.
func dropRedisPrefix(addr, prefix string, log io.Writer) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cursor uint64
	n := 0
	for {
		keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			fmt.Fprintf(log, "stack: delete Redis keys %s*: %v\n", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				fmt.Fprintf(log, "stack: delete Redis keys %s*: %v\n", prefix, err)
				return
			}
			n += len(keys)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	fmt.Fprintf(log, "stack: deleted %d Redis keys under %s\n", n, prefix)
}
