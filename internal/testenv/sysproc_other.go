//go:build !linux

package testenv

import "syscall"

// dieWithParent has no equivalent outside Linux; there, servers are stopped
// only by t.Cleanup.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
