package gitsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RenderFunc renders the spec found in workTree into its render directory
// and returns the commit message for the result (see AppendTrailers). After
// a rejected push Publish calls it on the new tip of the branch, which may
// carry a changed spec: it must load the spec again, plan, apply and render,
// exactly as the first run did. An error stops Publish with nothing pushed.
type RenderFunc func(ctx context.Context, workTree string) (message string, err error)

// Published says what Publish did.
type Published struct {
	// Commit is the commit pushed; "" when the render was unchanged and
	// nothing was committed or pushed.
	Commit string
	// Branch is the remote branch written (Branch, or PushBranch).
	Branch string
	// Base is the tip of Branch the pushed render was computed from: the
	// spec revision.
	Base string
	// Files are the committed paths, relative to the repository root.
	Files []string
	// Attempts counts the pushes tried (1 when the first one landed).
	Attempts int
}

// Publish commits the render directory of the work tree Sync checked out
// and pushes the commit, fast-forward only: one commit per reconcile, none
// when the render did not change, never a force push.
//
// When the push is rejected because the branch moved (someone pushed after
// Sync), Publish waits (Backoff, doubling), syncs to the new tip, calls
// rerender on it, commits the new render on top and pushes again, up to
// PushAttempts pushes in all. The error is then the last rejection
// (errors.Is ErrNonFastForward). A rerender error ends Publish with a
// *RerenderError and nothing pushed. Other failures (credentials, a hook
// refusing the push) are not retried. A nil rerender means no retry.
//
// With PushBranch, the commit goes to that branch, always rendered from the
// tip of Branch: on top of the push branch when it already contains that
// tip, as a merge of the push branch and the tip when Branch moved on, so
// the push stays a fast-forward and the branch keeps its history for the
// review. The push branch's tree is Branch's tree plus Ferry's render.
func (r *Repo) Publish(ctx context.Context, message string, rerender RenderFunc) (*Published, error) {
	if r.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	if r.tip == "" {
		return nil, errors.New("gitsync: Publish called before Sync")
	}
	wait := r.opts.Backoff
	for attempt := 1; ; attempt++ {
		res, err := r.commitAndPush(ctx, message)
		if err == nil {
			res.Attempts = attempt
			return res, nil
		}
		if !errors.Is(err, ErrNonFastForward) || rerender == nil {
			return nil, err
		}
		if attempt >= r.opts.PushAttempts {
			return nil, fmt.Errorf("gave up after %d push attempts: %w", attempt, err)
		}
		r.opts.Log.Info("git push rejected, fetching the new tip to render again", "url", r.URL(), "attempt", attempt, "wait", wait)
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		wait = min(2*wait, r.opts.MaxBackoff)
		if _, err := r.Sync(ctx); err != nil {
			return nil, err
		}
		message, err = rerender(ctx, r.WorkTree())
		if err != nil {
			return nil, &RerenderError{Revision: r.tip, Attempt: attempt, Err: err}
		}
	}
}

// commitAndPush is one attempt of Publish.
func (r *Repo) commitAndPush(ctx context.Context, message string) (*Published, error) {
	message = strings.TrimRight(message, " \t\r\n")
	if message == "" {
		return nil, errors.New("gitsync: empty commit message")
	}
	target, old, parents := r.opts.Branch, r.tip, []string{r.tip}
	if r.opts.PushBranch != "" {
		var err error
		target, old = r.opts.PushBranch, r.pushTip
		if parents, err = r.pushParents(ctx); err != nil {
			return nil, r.fail("commit", err)
		}
	}
	res := &Published{Branch: target, Base: r.tip}
	c, err := r.clone.Commit(ctx, CommitRequest{
		Dir: r.RenderPath(), Message: message + "\n",
		Author: r.opts.Author, Committer: r.opts.Committer, Parents: parents,
	})
	if err != nil {
		return nil, r.fail("commit", err)
	}
	if c.Hash == "" {
		r.opts.Log.Info("git commit: render unchanged, nothing to push", "url", r.URL(), "branch", r.opts.Branch, "revision", r.tip)
		return res, nil
	}
	if r.pushTip != "" && r.opts.PushBranch != "" {
		tree, err := r.clone.Tree(ctx, r.pushTip)
		if err != nil {
			return nil, r.fail("commit", err)
		}
		if tree == c.Tree {
			r.opts.Log.Info("git commit: push branch already holds this render", "url", r.URL(), "branch", target)
			return res, nil
		}
	}
	if err := r.clone.Push(ctx, c.Hash, target, old); err != nil {
		return nil, r.fail("push", err)
	}
	r.opts.Log.Info("git push", "url", r.URL(), "branch", target, "commit", c.Hash, "files", len(c.Files))
	res.Commit, res.Files = c.Hash, c.Files
	if target == r.opts.Branch {
		r.tip = c.Hash
	} else {
		r.pushTip = c.Hash
	}
	return res, nil
}

// pushParents chooses the parents of a commit for the push branch so the
// push is a fast-forward and the branch contains the tip of Branch.
func (r *Repo) pushParents(ctx context.Context) ([]string, error) {
	p, tip := r.pushTip, r.tip
	if p == "" || p == tip {
		return []string{tip}, nil
	}
	if ok, err := r.clone.IsAncestor(ctx, tip, p); err != nil || ok {
		return []string{p}, err // the push branch is ahead of Branch: build on it
	}
	if ok, err := r.clone.IsAncestor(ctx, p, tip); err != nil || ok {
		return []string{tip}, err // merged meanwhile: the tip descends from it
	}
	return []string{p, tip}, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
