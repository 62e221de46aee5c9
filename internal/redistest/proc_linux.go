package redistest

import "syscall"

// sysProcAttr has the kernel kill the server if the test binary dies first
// (a test timeout, say).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
