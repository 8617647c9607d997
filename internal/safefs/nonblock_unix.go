//go:build unix

package safefs

import "syscall"

// nonBlock keeps open(2) from waiting for a writer on a FIFO.
const nonBlock = syscall.O_NONBLOCK
