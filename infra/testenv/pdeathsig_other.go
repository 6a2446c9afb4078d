//go:build !linux

package testenv

import "os/exec"

// setParentDeathSignal is Linux-only; elsewhere the servers are stopped by
// StopRedisCluster from TestMain alone.
func setParentDeathSignal(cmd *exec.Cmd) {}
