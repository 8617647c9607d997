package gitsync

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrNotWorkTree is returned by Commit when the directory is not inside a
// git work tree: there is nothing to commit to, which is not a failure.
var ErrNotWorkTree = errors.New("not a git work tree")

// StagedElsewhereError refuses a commit that would sweep up changes the
// user staged outside the render directory.
type StagedElsewhereError struct {
	RenderDir string
	Paths     []string
}

func (e *StagedElsewhereError) Error() string {
	shown := e.Paths
	if len(shown) > 3 {
		shown = append(shown[:3:3], fmt.Sprintf("and %d more", len(e.Paths)-3))
	}
	return fmt.Sprintf("not committing %s: changes outside it are staged (%s); commit or unstage them", e.RenderDir, strings.Join(shown, ", "))
}

// Committed says what Commit did.
type Committed struct {
	// Hash is the new commit, zero when nothing changed.
	Hash plumbing.Hash
	// Files are the paths (relative to the work tree) in the commit.
	Files []string
}

// Commit records every change under renderDir (a directory inside the work
// tree holding dir) in one commit with message, and nothing else: one
// commit per reconcile, none when the render did not change. The author
// is the repository's or user's configured identity, else Ferry's.
func Commit(dir, renderDir, message string) (*Committed, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return nil, ErrNotWorkTree
	}
	if err != nil {
		return nil, err
	}
	wt, err := repo.Worktree()
	if errors.Is(err, git.ErrIsBareRepository) {
		return nil, ErrNotWorkTree
	}
	if err != nil {
		return nil, err
	}
	root, err := filepath.Abs(wt.Filesystem.Root())
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(renderDir)
	if err != nil {
		return nil, err
	}
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("render directory %s is outside the work tree %s", renderDir, root)
	}
	status, err := wt.Status()
	if err != nil {
		return nil, fmt.Errorf("git status: %w", err)
	}
	mine, err := SelectChanges(statusFiles(status), filepath.ToSlash(rel))
	var se *StagedElsewhereError
	if errors.As(err, &se) {
		se.RenderDir = renderDir
	}
	if err != nil {
		return nil, err
	}
	if len(mine) == 0 {
		return &Committed{}, nil
	}
	if err := stage(wt, status, filepath.ToSlash(rel), mine); err != nil {
		return nil, err
	}
	sig := signature(repo)
	hash, err := wt.Commit(message, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		return nil, fmt.Errorf("git commit: %w", err)
	}
	return &Committed{Hash: hash, Files: mine}, nil
}

// stage adds paths, all under dir, to the index: one directory add (one
// status walk, one index write) rather than go-git's Add per file, which
// walks the status each time and takes minutes for a thousand files.
func stage(wt *git.Worktree, status git.Status, dir string, paths []string) error {
	if _, err := wt.Filesystem.Lstat(dir); err == nil {
		if err := wt.AddWithOptions(&git.AddOptions{Path: dir}); err != nil {
			return fmt.Errorf("git add %s: %w", dir, err)
		}
		return nil
	}
	// The whole directory is gone: remove its files one by one.
	for _, p := range paths {
		if status.File(p).Worktree != git.Deleted {
			return fmt.Errorf("git add %s: %s is missing but %s is not deleted", p, dir, p)
		}
		if _, err := wt.Remove(p); err != nil {
			return fmt.Errorf("git rm %s: %w", p, err)
		}
	}
	return nil
}

// statusFiles converts go-git's status for SelectChanges.
func statusFiles(status git.Status) []FileStatus {
	files := make([]FileStatus, 0, len(status))
	for p, st := range status {
		files = append(files, FileStatus{
			Path:    p,
			Staged:  st.Staging != git.Unmodified && st.Staging != git.Untracked,
			Changed: st.Staging != git.Unmodified || st.Worktree != git.Unmodified,
		})
	}
	return files
}

// signature is the configured identity (repository, then global, then
// system configuration), or Ferry's own.
func signature(repo *git.Repository) *object.Signature {
	sig := &object.Signature{Name: "Ferry", Email: "ferry@localhost", When: time.Now()}
	if cfg, err := repo.ConfigScoped(config.SystemScope); err == nil {
		if cfg.User.Name != "" {
			sig.Name = cfg.User.Name
		}
		if cfg.User.Email != "" {
			sig.Email = cfg.User.Email
		}
	}
	return sig
}
