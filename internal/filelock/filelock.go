package filelock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FileName is the lock file's name inside a git directory.
const FileName = "ferry.lock"

// PathFor returns the lock file guarding dir: FileName in the git
// directory of the work tree holding dir (so every spec directory of one
// repository shares one lock, as they share one commit-back), else a file
// named after dir's absolute path under cacheDir/locks (os.TempDir when
// cacheDir is empty).
func PathFor(dir, cacheDir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	if gitDir := findGitDir(abs); gitDir != "" {
		return filepath.Join(gitDir, FileName), nil
	}
	if cacheDir == "" {
		cacheDir = filepath.Join(os.TempDir(), "ferry")
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(cacheDir, "locks", hex.EncodeToString(sum[:8])+".lock"), nil
}

// findGitDir walks up from dir to the first .git: a directory, or a file
// pointing at one (`gitdir: PATH`, what `git worktree add` writes).
func findGitDir(dir string) string {
	for d := dir; ; {
		p := filepath.Join(d, ".git")
		if fi, err := os.Stat(p); err == nil {
			if fi.IsDir() {
				return p
			}
			if b, err := os.ReadFile(p); err == nil {
				if g, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir: "); ok {
					if !filepath.IsAbs(g) {
						g = filepath.Join(d, g)
					}
					return g
				}
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

// Lock is a held lock; Release it when done.
type Lock struct {
	f *os.File
}

// HeldError is what TryAcquire returns when another process holds the
// lock.
type HeldError struct {
	Path string
	// Holder is what the holder wrote into the lock file ("pid 123:
	// ferry run ..."), empty if it could not be read.
	Holder string
}

func (e *HeldError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("%s is locked by another ferry", e.Path)
	}
	return fmt.Sprintf("%s is locked by %s", e.Path, e.Holder)
}

// PollInterval is how often Acquire tries again while another process
// holds the lock.
var PollInterval = 200 * time.Millisecond

// Acquire takes the lock at path, waiting while another process holds it
// until ctx ends. who describes this process in the lock file, for the
// message the next waiter prints. waiting, when not nil, is called once if
// Acquire has to wait, with the holder's description.
func Acquire(ctx context.Context, path, who string, waiting func(holder string)) (*Lock, error) {
	told := false
	for {
		l, err := TryAcquire(path, who)
		var held *HeldError
		if !errors.As(err, &held) {
			return l, err
		}
		if !told && waiting != nil {
			waiting(held.Holder)
			told = true
		}
		t := time.NewTimer(PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for %v: %w", held, ctx.Err())
		case <-t.C:
		}
	}
}

// TryAcquire takes the lock at path or returns a *HeldError at once.
func TryAcquire(path, who string) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	ok, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		b, _ := os.ReadFile(path)
		f.Close()
		return nil, &HeldError{Path: path, Holder: strings.TrimSpace(string(b))}
	}
	// Say who holds it, for the next one to wait.
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d: %s\n", os.Getpid(), who)
	}
	return &Lock{f: f}, nil
}

// Release gives the lock up. The file stays: removing it would let a
// waiter lock a file a newcomer no longer sees.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
