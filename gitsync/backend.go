package gitsync

import (
	"context"
	"time"
)

// Backend is the git implementation a Repo drives. gitsync/gogit (go-git)
// is the one Ferry ships; the interface is here, with the code that uses
// it, so the orchestration (when to fetch, what to commit on, how to react
// to a rejected push) is written and tested once, whatever does the git
// work.
type Backend interface {
	// Open returns the clone in dir, creating an empty one with the remote
	// "origin" set to ep.URL when dir holds none, or one for another URL
	// (the directory is a cache: it may be thrown away). It does not touch
	// the network.
	Open(ctx context.Context, dir string, ep Endpoint) (Clone, error)
}

// Endpoint is a remote repository and how to authenticate to it. URL is
// clean (ParseRepoURL's Clean); the credentials are kept apart and never
// written to disk.
type Endpoint struct {
	URL         string
	Credentials *Credentials
}

// Clone is a local clone with a work tree: what it fetches and pushes
// (Remote), its checked-out files (WorkingCopy) and what it can tell about
// the commits it holds (History).
type Clone interface {
	Remote
	WorkingCopy
	History
	// Close releases what the clone holds open.
	Close() error
}

// Remote is the network side of a clone. Every method is one round of the
// git protocol; none of them writes to the work tree.
type Remote interface {
	// List returns the tips of the named branches on the remote with one
	// ref advertisement (git ls-remote). Branches the remote does not have
	// are absent from the map; an empty repository gives an empty map.
	List(ctx context.Context, branches ...string) (map[string]string, error)
	// Fetch downloads the named branches (all of which exist on the
	// remote), only depth commits deep when depth > 0, and returns the
	// tips it fetched.
	Fetch(ctx context.Context, depth int, branches ...string) (map[string]string, error)
	// Push sets the remote branch to rev, only when the remote branch is
	// at old ("" means it must not exist yet) and rev descends from old.
	// It never forces. A moved branch is a *PushRejectedError that matches
	// ErrNonFastForward.
	Push(ctx context.Context, rev, branch, old string) error
}

// WorkingCopy is the checked-out side of a clone.
type WorkingCopy interface {
	// Path is the work tree's root directory.
	Path() string
	// Checkout makes the work tree hold exactly rev: tracked files reset,
	// untracked files removed, HEAD detached at rev.
	Checkout(ctx context.Context, rev string) error
	// Commit records the changes under req.Dir, and nothing else (see
	// SelectChanges), on top of req.Parents. It returns a zero CommitResult when
	// nothing under req.Dir differs from the checked-out revision.
	Commit(ctx context.Context, req CommitRequest) (CommitResult, error)
}

// History answers questions about commits in the clone, without the network.
type History interface {
	// Has reports whether the clone holds commit rev.
	Has(ctx context.Context, rev string) (bool, error)
	// IsAncestor reports whether ancestor is rev or reachable from it. In a
	// shallow clone history may end early: false then also means "cannot
	// tell", and callers must treat it as the safe answer.
	IsAncestor(ctx context.Context, ancestor, rev string) (bool, error)
	// ChangedPaths lists the paths (slash-separated, from the repository
	// root) whose content or mode differs between the trees of two commits.
	ChangedPaths(ctx context.Context, from, to string) ([]string, error)
	// Tree returns the hash of rev's root tree.
	Tree(ctx context.Context, rev string) (string, error)
}

// Signature is a commit's author or committer.
type Signature struct {
	Name, Email string
	// When is the time recorded; zero means the time of the commit.
	When time.Time
}

// CommitRequest is what WorkingCopy.Commit records.
type CommitRequest struct {
	// Dir is the directory whose changes are committed, slash-separated and
	// relative to the work tree root ("" or "." for the whole tree).
	Dir string
	// Message is the full commit message, trailers included.
	Message string
	// Author and Committer sign the commit.
	Author, Committer Signature
	// Parents are the new commit's parents; empty means the checked-out
	// revision. Two parents make the merge commit a push branch needs when
	// its base moved on.
	Parents []string
}

// CommitResult is a commit WorkingCopy.Commit made.
type CommitResult struct {
	// Hash is the commit, "" when nothing changed.
	Hash string
	// Tree is its root tree.
	Tree string
	// Files are the committed paths, relative to the work tree root.
	Files []string
}
