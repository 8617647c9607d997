//go:build !unix

package filelock

import "os"

// Without flock(2) the lock is advisory in name only: Ferry's supported
// platforms are Linux and macOS.
func tryLock(*os.File) (bool, error) { return true, nil }

func unlock(*os.File) error { return nil }
