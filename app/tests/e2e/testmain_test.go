package e2e

import (
	"testing"

	"seckill/infra/testenv"
)

// TestMain stops this process's private Redis Cluster (testenv.RedisCluster)
// once the tests are done.
func TestMain(m *testing.M) { testenv.Main(m) }
