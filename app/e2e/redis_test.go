package e2e

import (
	"io"
	"net/http"
	"strings"

	"github.com/redis/go-redis/v9"
)

func newRedis(addr string) *redis.Client { return redis.NewClient(&redis.Options{Addr: addr}) }

func ioCopy(dst *strings.Builder, res *http.Response) (int64, error) { return io.Copy(dst, res.Body) }
