//go:build unix && !linux

package hydra

import (
	"os"
	"syscall"
)

// sysProcAttr puts Hydra in its own process group, so that killGroup ends
// it and anything it spawned.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills the process group led by p; a group already gone is
// not an error.
func killGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}
