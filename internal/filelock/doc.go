// Package filelock keeps two Ferry processes from reconciling one spec
// directory at once: `ferry reconcile` and `ferry run` take an exclusive
// flock(2) on a lock file in the directory's git metadata (or, for a plain
// directory, in the cache directory) before they write the render
// directory or commit. The second one waits, saying who holds the lock.
//
// flock locks belong to the open file, so a process that dies, however it
// dies, releases its lock; there is never a stale lock to clean up.
package filelock
