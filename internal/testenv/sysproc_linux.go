package testenv

import "syscall"

// dieWithParent makes the kernel kill a server when the test binary dies,
// even by SIGKILL from go test's -timeout, so no server outlives its test.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
