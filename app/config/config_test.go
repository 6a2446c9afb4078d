package config

import (
	"slices"
	"strings"
	"testing"
)

// The Redis client follows go-redis's UniversalClient rule: a list of two or
// more addresses, or --redis-cluster, is a cluster.
func TestRedisClusterMode(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		flag    bool
		addrs   []string
		cluster bool
	}{
		{"", false, nil, false},
		{"127.0.0.1:6379", false, []string{"127.0.0.1:6379"}, false},
		{"127.0.0.1:6379", true, []string{"127.0.0.1:6379"}, true},
		{"a:7001, b:7002 ,c:7003", false, []string{"a:7001", "b:7002", "c:7003"}, true},
		{"a:7001,", false, []string{"a:7001"}, false},
	} {
		c := Default()
		c.RedisAddr, c.RedisCluster = tc.addr, tc.flag
		if got := c.RedisAddrs(); !slices.Equal(got, tc.addrs) {
			t.Errorf("RedisAddrs(%q) = %q, want %q", tc.addr, got, tc.addrs)
		}
		if got := c.RedisClusterMode(); got != tc.cluster {
			t.Errorf("RedisClusterMode(%q, --redis-cluster=%v) = %v, want %v", tc.addr, tc.flag, got, tc.cluster)
		}
	}
}

func TestValidateRefusesWhatAClusterCannotDo(t *testing.T) {
	c := Default()
	c.RedisCluster = true
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--redis-cluster needs --redis-addr") {
		t.Errorf("--redis-cluster with the embedded Redis: %v", err)
	}
	c.RedisAddr, c.RedisDB = "a:7001,b:7002", 2
	c.RedisCluster = false
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "database 0 only") {
		t.Errorf("--redis-db 2 on a cluster: %v", err)
	}
	c.RedisDB = 0
	if err := c.Validate(); err != nil {
		t.Errorf("a cluster with database 0: %v", err)
	}
}
