package testenv

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel kill the child when this process
// dies, so a test binary that exits without StopRedisCluster (a panic, a
// timeout, a package without the TestMain hook) leaves no servers behind.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
