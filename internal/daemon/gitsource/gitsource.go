// Package gitsource is the daemon's Source for a remote config repository
// (`ferry run --repo`): a thin adapter over gitsync. The tip is one
// ls-remote, a checkout is a fetch of what the cache lacks, the render is
// committed and pushed fast-forward only after the reconcile, and a new tip
// that changes only the render directory (Ferry's own commit, or someone's
// edit of rendered output) is not new desired state.
package gitsource

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/internal/daemon"
	"github.com/ferry-gitops/ferry/internal/pipeline"
)

// Source is a config repository cloned into the cache.
type Source struct {
	repo *gitsync.Repo
}

var (
	_ daemon.Source     = (*Source)(nil)
	_ daemon.Publisher  = (*Source)(nil)
	_ daemon.SpecFilter = (*Source)(nil)
)

// New returns the Source of repo, opened read-write. The daemon's loop is
// its only user, so the Repo is never used concurrently.
func New(repo *gitsync.Repo) *Source { return &Source{repo: repo} }

// Tip implements daemon.Source with one ref advertisement.
func (s *Source) Tip(ctx context.Context) (string, error) {
	return s.repo.Head(ctx)
}

// Checkout implements daemon.Source: the clone is brought to the branch's
// tip, which may be newer than revision when the branch moved since Tip
// (the newest desired state is the one to reconcile). The Committer keeps
// the reconcile's message for Publish.
func (s *Source) Checkout(ctx context.Context, _ string) (daemon.Checkout, error) {
	tip, err := s.repo.Sync(ctx)
	if err != nil {
		return daemon.Checkout{}, err
	}
	return daemon.Checkout{
		Dir:       s.repo.Dir(),
		Revision:  tip,
		Committer: &pipeline.RemoteCommitter{Revision: tip},
	}, nil
}

// Publish implements daemon.Publisher: one commit of the render directory
// with the message the reconcile recorded, pushed fast-forward only. It
// does not retry itself: a rejected push wraps daemon.ErrPublishRejected,
// and the daemon checks out the new tip, reconciles it and publishes
// again, so a new tip whose spec is invalid stops before any push.
func (s *Source) Publish(ctx context.Context, co daemon.Checkout) (daemon.Published, error) {
	c, ok := co.Committer.(*pipeline.RemoteCommitter)
	if !ok {
		return daemon.Published{}, fmt.Errorf("gitsource: checkout of %s has no commit message", co.Revision)
	}
	if c.Message() == "" {
		// The reconcile stopped before rendering: nothing to publish.
		return daemon.Published{Revision: co.Revision}, nil
	}
	res, err := s.repo.Publish(ctx, c.Message(), nil)
	if errors.Is(err, gitsync.ErrNonFastForward) {
		return daemon.Published{}, fmt.Errorf("%w: %w", daemon.ErrPublishRejected, err)
	}
	if err != nil {
		return daemon.Published{}, err
	}
	p := daemon.Published{Revision: res.Base, Commit: res.Commit, Pushed: res.Commit != ""}
	if res.Commit != "" && res.Branch == s.repo.Branch() {
		// The branch the daemon polls now points at its own commit.
		p.Revision = res.Commit
	}
	return p, nil
}

// SpecChanged implements daemon.SpecFilter: it fetches to the tip (the
// commits compared must be in the clone) and compares the trees outside
// the render directory. Anything it cannot tell counts as changed.
func (s *Source) SpecChanged(ctx context.Context, from, to string) (bool, error) {
	if _, err := s.repo.Sync(ctx); err != nil {
		return true, err
	}
	return s.repo.ChangedOutside(ctx, from, to, s.repo.RenderPath())
}
