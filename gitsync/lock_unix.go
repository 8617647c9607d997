//go:build unix

package gitsync

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on path (created if missing),
// without waiting: a second process on the same cache gets ErrCacheLocked.
// The kernel drops the lock when the process dies, so a killed run never
// leaves the cache locked.
func lockFile(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock cache: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrCacheLocked, path)
		}
		return nil, fmt.Errorf("lock cache %s: %w", path, err)
	}
	return f, nil
}
