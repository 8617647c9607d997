//go:build !unix

package gitsync

import "io"

type noLock struct{}

func (noLock) Close() error { return nil }

// lockFile does not lock where flock(2) is missing: two processes sharing a
// cache directory there must be kept apart by the caller.
func lockFile(string) (io.Closer, error) { return noLock{}, nil }
