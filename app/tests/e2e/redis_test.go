package e2e

import (
	"io"
	"net/http"
	"strings"

	"github.com/redis/go-redis/v9"
)

// newRedis connects to the instances' Redis by their --redis-addr: a
// cluster client for a comma-separated list, as the app itself does.
func newRedis(addr string) redis.UniversalClient {
	return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: strings.Split(addr, ",")})
}

func ioCopy(dst *strings.Builder, res *http.Response) (int64, error) { return io.Copy(dst, res.Body) }
