package gitsync

import (
	"context"
	"errors"

	"github.com/ferry-gitops/ferry/reconcile"
)

// WorkTree commits the render directory of a local git work tree: the
// reconcile.Committer of `ferry reconcile DIR` when DIR is in a work tree.
type WorkTree struct {
	// Dir is a directory inside the work tree (the spec directory).
	Dir string
}

var _ reconcile.Committer = WorkTree{}

// Commit implements reconcile.Committer with Commit's rules: the render
// directory only, one commit, none when nothing changed, refused when the
// user staged changes elsewhere.
func (w WorkTree) Commit(_ context.Context, renderDir, message string) (reconcile.Commit, error) {
	c, err := Commit(w.Dir, renderDir, message)
	if errors.Is(err, ErrNotWorkTree) {
		return reconcile.Commit{Skipped: "not a git work tree"}, nil
	}
	if err != nil {
		return reconcile.Commit{}, err
	}
	out := reconcile.Commit{Files: c.Files}
	if !c.Hash.IsZero() {
		out.Hash = c.Hash.String()
	}
	return out, nil
}
