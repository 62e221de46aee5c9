//go:build unix && !linux

package e2e

import (
	"os"
	"syscall"
)

// proxySysProcAttr puts a proxy in its own process group, so that
// killProxyGroup ends it and anything it spawned.
func proxySysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// killProxyGroup kills the process group led by p; a group already gone is
// not an error.
func killProxyGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}
