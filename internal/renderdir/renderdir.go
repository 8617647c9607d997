// Package renderdir writes Ferry's render directory on disk: it replaces
// the entries Ferry owns there (catalogs/, mirror/, samples/, the lock
// file) with a new render and leaves everything else alone.
//
// The render directory lives in a config repository anyone can push to, so
// it is treated as hostile: a symlink, FIFO or device anywhere in what Ferry
// would remove or write is refused before anything is touched, and the
// writes themselves go through an os.Root, which cannot leave the directory
// even if it changes underneath. A render directory that is itself a
// symlink (rendered -> /elsewhere) is refused for the same reason: Ferry
// would otherwise delete and rewrite files outside the repository.
package renderdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Owned are the top-level entries of a render directory that Ferry owns:
// each write replaces them whole, so files of removed packages or catalogs
// do not linger. Anything else in the directory is the user's.
var Owned = []string{"catalogs", "mirror", "samples", "cluster", "ferry.lock.yaml"}

// UnsafePathError refuses a render directory Ferry must not write into.
type UnsafePathError struct {
	// Path is the offending path as the caller named it (the render
	// directory joined with the entry).
	Path   string
	Reason string
}

func (e *UnsafePathError) Error() string {
	return fmt.Sprintf("render directory: %s: %s; Ferry never writes or deletes through links or special files", e.Path, e.Reason)
}

// Check reports whether dir can be written: it must not be a symlink or
// anything but a directory (it may not exist yet), and nothing under the
// entries Ferry owns may be a symlink or a special file. It writes nothing.
func Check(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := kindOK(dir, fi, true); err != nil {
		return err
	}
	for _, owned := range Owned {
		top := filepath.Join(dir, owned)
		if _, err := os.Lstat(top); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			return kindOK(p, fi, d.IsDir())
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func kindOK(p string, fi fs.FileInfo, wantDir bool) error {
	m := fi.Mode()
	switch {
	case m&fs.ModeSymlink != 0:
		target, _ := os.Readlink(p)
		return &UnsafePathError{Path: p, Reason: fmt.Sprintf("is a symlink (to %s)", target)}
	case wantDir && !m.IsDir():
		return &UnsafePathError{Path: p, Reason: "is not a directory"}
	case !m.IsDir() && !m.IsRegular():
		return &UnsafePathError{Path: p, Reason: fmt.Sprintf("is not a regular file (%s)", m.Type())}
	}
	return nil
}

// Write replaces the owned entries of dir with files (render-directory
// paths to contents). It checks everything first (Check, and that every
// path is a clean relative path under an owned entry) and writes nothing
// when anything is wrong.
func Write(dir string, files map[string][]byte) error {
	paths := make([]string, 0, len(files))
	for p := range files {
		if err := checkPath(p); err != nil {
			return err
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if err := Check(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// MkdirAll follows a symlink created since Check; the root below
	// refuses to work through one.
	if err := Check(dir); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, owned := range Owned {
		if err := root.RemoveAll(owned); err != nil {
			return fmt.Errorf("render directory %s: %w", dir, err)
		}
	}
	for _, p := range paths {
		if d := path.Dir(p); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("render directory %s: %w", dir, err)
			}
		}
		if err := root.WriteFile(p, files[p], 0o644); err != nil {
			return fmt.Errorf("render directory %s: %w", dir, err)
		}
	}
	return nil
}

// checkPath accepts only clean relative slash paths under an owned entry:
// the render is computed, but a path must never name anything else.
func checkPath(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || strings.HasPrefix(p, "../") || p == ".." || strings.Contains(p, "\\") {
		return fmt.Errorf("render directory: refusing to write %q: not a clean relative path", p)
	}
	top, _, _ := strings.Cut(p, "/")
	for _, o := range Owned {
		if top == o {
			return nil
		}
	}
	return fmt.Errorf("render directory: refusing to write %q: outside the entries Ferry owns (%s)", p, strings.Join(Owned, ", "))
}
