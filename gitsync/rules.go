package gitsync

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// FileStatus is one path of `git status`, as SelectChanges needs it.
type FileStatus struct {
	// Path is slash-separated, relative to the work tree root.
	Path string
	// Staged: the index differs from HEAD for this path (untracked files
	// are not staged).
	Staged bool
	// Changed: the path differs from HEAD in the index or the work tree,
	// untracked files included.
	Changed bool
}

// SelectChanges is the commit rule every Ferry commit follows, local work
// tree or cache of a remote: commit the changes under dir and nothing else.
// It returns the paths to commit (sorted), none when the render did not
// change; and a *StagedElsewhereError when changes outside dir are staged,
// because committing would sweep up someone's half-made commit. Unstaged
// edits and untracked files elsewhere are left alone.
func SelectChanges(files []FileStatus, dir string) ([]string, error) {
	prefix, err := dirPrefix(dir)
	if err != nil {
		return nil, err
	}
	var elsewhere, mine []string
	for _, f := range files {
		inside := strings.HasPrefix(f.Path, prefix)
		switch {
		case !inside && f.Staged:
			elsewhere = append(elsewhere, f.Path)
		case inside && f.Changed:
			mine = append(mine, f.Path)
		}
	}
	sort.Strings(elsewhere)
	sort.Strings(mine)
	if len(elsewhere) > 0 {
		return nil, &StagedElsewhereError{RenderDir: dir, Paths: elsewhere}
	}
	return mine, nil
}

// dirPrefix turns a slash-separated directory relative to the work tree
// root into the prefix its paths start with ("" for the root). A path that
// leaves the work tree is an error.
func dirPrefix(dir string) (string, error) {
	if dir == "" || dir == "." {
		return "", nil
	}
	clean := path.Clean(dir)
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(dir, "\\") {
		return "", fmt.Errorf("directory %q must be relative to the work tree and inside it", dir)
	}
	return clean + "/", nil
}

// Outside reports whether any of paths lies outside dir (slash-separated,
// relative to the repository root). A commit whose changes are all inside
// the render directory is Ferry's own output, not new desired state.
func Outside(paths []string, dir string) (bool, error) {
	prefix, err := dirPrefix(dir)
	if err != nil {
		return false, err
	}
	for _, p := range paths {
		if !strings.HasPrefix(p, prefix) {
			return true, nil
		}
	}
	return false, nil
}
