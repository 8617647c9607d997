package daemon

import (
	"context"
	"errors"

	"github.com/ferry-gitops/ferry/reconcile"
)

// Source is where desired state comes from: a config repository, or a
// plain directory. The daemon asks for the tip on every trigger and checks
// out only a revision it has not reconciled yet, so an idle poll costs one
// Tip.
type Source interface {
	// Tip returns the current revision of the desired state, as cheaply as
	// the source allows (one ls-remote-style ref lookup for a remote
	// repository; a hash of the spec files for a directory). Equal
	// revisions mean equal desired state.
	Tip(ctx context.Context) (string, error)
	// Checkout makes revision available as a spec directory. The result
	// stays valid until the next Checkout.
	Checkout(ctx context.Context, revision string) (Checkout, error)
}

// Checkout is a revision of the desired state on disk.
type Checkout struct {
	// Dir is the spec directory (a repository's --path sub-directory).
	Dir string
	// Revision is what Dir holds; it may be newer than the revision asked
	// for when the source moved meanwhile.
	Revision string
	// Committer records the render directory after the reconcile (with
	// the source revision in its trailers, for a remote repository); nil
	// commits in Dir's git work tree when it is one.
	Committer reconcile.Committer
}

// Publisher is a Source that sends commits somewhere else: a remote
// repository is pushed to after every reconcile (fast-forward only).
// Sources without one (a local directory) keep the commit where it is.
type Publisher interface {
	// Publish pushes what the reconcile committed in co, if anything is
	// ahead of the remote; a remote that moved meanwhile is an error
	// wrapping ErrPublishRejected, and nothing was pushed. The daemon then
	// takes the new tip, reconciles it (re-planned and re-rendered on top)
	// and publishes again, a bounded number of times.
	Publish(ctx context.Context, co Checkout) (Published, error)
}

// Published is what a Publish did.
type Published struct {
	// Revision is the tip of the polled branch after the push: the
	// daemon's own commit, which is therefore not new desired state (the
	// checked-out revision when nothing was pushed, or when the commit
	// went to another branch for review).
	Revision string
	// Commit is the commit pushed, "" when none.
	Commit string
	// Pushed is false when there was nothing to push.
	Pushed bool
}

// ErrPublishRejected is wrapped by Publish when the remote moved since the
// checkout (a fast-forward-only push refused).
var ErrPublishRejected = errors.New("push rejected: the remote moved")

// SpecFilter is a Source that can tell a new revision that changes only
// the render directory (Ferry's own commit-back, or someone else's edit of
// rendered output) from new desired state.
type SpecFilter interface {
	// SpecChanged reports whether anything outside the render directory
	// differs between the two revisions.
	SpecChanged(ctx context.Context, from, to string) (bool, error)
}

// Watcher is a Source that can say when it may have changed, sooner than
// the next poll (fsnotify on a local directory).
type Watcher interface {
	// Watch calls changed (debounced) whenever the source may have
	// changed, until ctx ends.
	Watch(ctx context.Context, changed func()) error
}
