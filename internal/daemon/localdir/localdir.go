// Package localdir is the daemon's Source for a plain spec directory (a
// git work tree or not): the revision is a hash of every file outside the
// render directory and .git, so Ferry's own render and commits are never
// new desired state, and fsnotify says, debounced, when to look again.
package localdir

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/ferry-gitops/ferry/internal/daemon"
)

// Source is a spec directory on this machine.
type Source struct {
	// Dir is the spec directory.
	Dir string
	// RenderDir is the render directory, relative to Dir: not spec, never
	// hashed or watched.
	RenderDir string
	// Debounce is how long the directory must be quiet after a change
	// before Watch reports it: an editor's save or a `git pull` is many
	// events.
	Debounce time.Duration
	// NoWatch leaves fsnotify off (file systems without inotify, such as
	// some network mounts); polling still notices changes.
	NoWatch bool
}

var (
	_ daemon.Source  = (*Source)(nil)
	_ daemon.Watcher = (*Source)(nil)
)

// skip reports whether rel (slash path relative to Dir) is outside the
// desired state: the render directory, git's metadata.
func (s *Source) skip(rel string) bool {
	if rel == ".git" || strings.HasPrefix(rel, ".git/") {
		return true
	}
	r := filepath.ToSlash(filepath.Clean(s.RenderDir))
	return r != "." && r != "" && (rel == r || strings.HasPrefix(rel, r+"/"))
}

// Tip hashes the paths, modes and contents of every file under Dir outside
// the render directory and .git. Symbolic links count by their target
// text, never followed.
func (s *Source) Tip(ctx context.Context) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.Dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && s.skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			fmt.Fprintf(h, "d %s\n", rel)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "l %s %s\n", rel, target)
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %s %x\n", rel, fh.Sum(nil))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", s.Dir, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Checkout implements daemon.Source: the directory is its own checkout.
// The revision is looked up again, so what is reconciled is what the
// directory holds now.
func (s *Source) Checkout(ctx context.Context, revision string) (daemon.Checkout, error) {
	rev, err := s.Tip(ctx)
	if err != nil {
		return daemon.Checkout{}, err
	}
	return daemon.Checkout{Dir: s.Dir, Revision: rev}, nil
}

// Watch implements daemon.Watcher with fsnotify on every directory under
// Dir except the render directory and .git (fsnotify is not recursive:
// directories created later are added as they appear).
func (s *Source) Watch(ctx context.Context, changed func()) error {
	if s.NoWatch {
		<-ctx.Done()
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	add := func(root string) error {
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil // gone meanwhile, or a file
			}
			rel, _ := filepath.Rel(s.Dir, p)
			if rel = filepath.ToSlash(rel); rel != "." && s.skip(rel) {
				return filepath.SkipDir
			}
			return w.Add(p)
		})
	}
	if err := add(s.Dir); err != nil {
		return fmt.Errorf("watch %s: %w", s.Dir, err)
	}
	debounce := s.Debounce
	if debounce <= 0 {
		debounce = time.Second
	}
	var quiet *time.Timer
	var quietC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflowed queue lost events: say "changed" to be safe.
			if err == fsnotify.ErrEventOverflow {
				changed()
				continue
			}
			return err
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			rel, err := filepath.Rel(s.Dir, ev.Name)
			if err != nil || s.skip(filepath.ToSlash(rel)) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
					_ = add(ev.Name)
				}
			}
			if quiet == nil {
				quiet = time.NewTimer(debounce)
			} else {
				quiet.Reset(debounce)
			}
			quietC = quiet.C
		case <-quietC:
			quietC = nil
			changed()
		}
	}
}
