package filelock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPathFor(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	linked := filepath.Join(root, "linked")
	plain := filepath.Join(root, "plain")
	for _, d := range []string{filepath.Join(repo, ".git"), filepath.Join(repo, "specs", "catalogs"), linked, plain, filepath.Join(root, "gitdirs", "wt")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A linked work tree: .git is a file naming the real git directory.
	if err := os.WriteFile(filepath.Join(linked, ".git"), []byte("gitdir: "+filepath.Join(root, "gitdirs", "wt")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(root, "cache")
	for _, tc := range []struct {
		name, dir, want string
	}{
		{"work tree root", repo, filepath.Join(repo, ".git", FileName)},
		{"spec directory deep in a work tree", filepath.Join(repo, "specs", "catalogs"), filepath.Join(repo, ".git", FileName)},
		{"linked work tree", linked, filepath.Join(root, "gitdirs", "wt", FileName)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PathFor(tc.dir, cache)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := filepath.EvalSymlinks(filepath.Dir(tc.want))
			if got != filepath.Join(want, FileName) {
				t.Errorf("PathFor(%s) = %s, want %s", tc.dir, got, tc.want)
			}
		})
	}
	t.Run("plain directory: in the cache, stable, per directory", func(t *testing.T) {
		a, err := PathFor(plain, cache)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := PathFor(plain+"/.", cache)
		other, _ := PathFor(cache, cache)
		if !strings.HasPrefix(a, filepath.Join(cache, "locks")+"/") || a != b || a == other {
			t.Errorf("PathFor: %s, %s, other dir %s", a, b, other)
		}
	})
}

func TestTryAcquireExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x", FileName)
	l, err := TryAcquire(path, "ferry run /specs")
	if err != nil {
		t.Fatal(err)
	}
	// A second open file description in this process is refused too:
	// flock locks belong to the open file, not the process.
	_, err = TryAcquire(path, "ferry reconcile")
	var held *HeldError
	if !errors.As(err, &held) || !strings.Contains(held.Holder, "ferry run /specs") || !strings.Contains(held.Holder, "pid ") {
		t.Fatalf("second TryAcquire: %v, want a HeldError naming the holder", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := TryAcquire(path, "ferry reconcile")
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l2.Release()
}

// TestAcquireWaitsForAnotherProcess holds the lock in a real second
// process (flock(1) from util-linux) and checks Acquire waits, says who
// holds it, and gets it once that process exits.
func TestAcquireWaitsForAnotherProcess(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("flock(1) not installed")
	}
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, []byte("pid 1: ferry run elsewhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The holder keeps the lock until its stdin closes.
	holder := exec.Command(flock, path, "cat")
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stdout = nil
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Wait()
	// Wait until the holder has it (polling is fine: it decides nothing).
	for {
		l, err := TryAcquire(path, "probe")
		if err != nil {
			break
		}
		l.Release()
		os.WriteFile(path, []byte("pid 1: ferry run elsewhere\n"), 0o644)
		time.Sleep(10 * time.Millisecond)
	}
	waited := make(chan string, 1)
	got := make(chan error, 1)
	go func() {
		l, err := Acquire(context.Background(), path, "ferry reconcile", func(h string) { waited <- h })
		if err == nil {
			l.Release()
		}
		got <- err
	}()
	if h := <-waited; !strings.Contains(h, "ferry run elsewhere") {
		t.Errorf("waiting callback got holder %q", h)
	}
	stdin.Close() // the holder exits, its lock goes with it
	if err := <-got; err != nil {
		t.Fatalf("Acquire after the holder exited: %v", err)
	}
}

func TestAcquireCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l, err := TryAcquire(path, "holder")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Acquire(ctx, path, "waiter", func(string) { cancel() })
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "holder") {
		t.Fatalf("Acquire on a cancelled context: %v", err)
	}
}
