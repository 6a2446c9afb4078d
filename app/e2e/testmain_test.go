package e2e

import (
	"os"
	"testing"

	"seckill/infra/testenv"
)

// TestMain stops this process's private Redis Cluster (testenv.RedisCluster)
// once the tests are done.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopRedisCluster()
	os.Exit(code)
}
