package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/gitsync/gogit"
	"github.com/ferry-gitops/ferry/reconcile"
)

// RepoSettings are a remote config repository: --repo and its companions.
// The CLI fills them from flags for every command that takes --repo, and
// `ferry run --repo` from the same flags, so both open the repository the
// same way.
type RepoSettings struct {
	// URL is --repo; user info in it is a credential, never stored.
	URL string
	// Branch, Path and PushBranch are --branch, --path and --push-branch.
	Branch, Path, PushBranch string
	// RenderDir is the render directory, relative to Path.
	RenderDir string
	// Credentials are the places credentials come from besides the URL
	// (flags, FERRY_GIT_* environment, a mounted Secret).
	Credentials gitsync.CredentialSources
	// CacheDir is --cache-dir; the clones live in its git sub-directory.
	CacheDir string
	// ReadOnly refuses every write to the remote (validate, render, diff,
	// reconcile --dry-run).
	ReadOnly bool
	// Author and Committer sign Ferry's commits; zero values are gitsync's
	// defaults.
	Author, Committer gitsync.Signature
	// PushAttempts bounds the pushes of one reconcile (0: gitsync's
	// default); Backoff is the first wait after a rejected push.
	PushAttempts int
	Backoff      time.Duration
	// Log receives gitsync's fetch and push lines (URLs redacted).
	Log *slog.Logger
}

// RepoCacheDir is where the clones of cacheDir live.
func RepoCacheDir(cacheDir string) string { return filepath.Join(cacheDir, "git") }

// OpenRepo gathers the credentials and opens the repository's clone in
// the cache, locking it until the Repo is closed. It does not touch the
// network. A setting the user must fix (a malformed URL or branch name, an
// unreadable credential file) is a *UsageError.
func OpenRepo(ctx context.Context, rs RepoSettings) (*gitsync.Repo, error) {
	if rs.CacheDir == "" {
		return nil, &UsageError{errors.New("--repo needs --cache-dir: the clone is kept there between runs")}
	}
	creds, err := gitsync.LoadCredentials(rs.URL, rs.Credentials)
	if err != nil {
		return nil, &UsageError{fmt.Errorf("--repo: %w", err)}
	}
	opts := gitsync.DefaultOptions(rs.URL, RepoCacheDir(rs.CacheDir))
	if rs.Branch != "" {
		opts.Branch = rs.Branch
	}
	opts.Path, opts.PushBranch, opts.RenderDir = rs.Path, rs.PushBranch, rs.RenderDir
	opts.Credentials, opts.ReadOnly = creds, rs.ReadOnly
	if rs.Author.Name != "" || rs.Author.Email != "" {
		opts.Author = rs.Author
		opts.Committer = rs.Author
	}
	if rs.Committer.Name != "" || rs.Committer.Email != "" {
		opts.Committer = rs.Committer
	}
	if rs.PushAttempts > 0 {
		opts.PushAttempts = rs.PushAttempts
	}
	if rs.Backoff > 0 {
		opts.Backoff = rs.Backoff
	}
	if rs.Log != nil {
		opts.Log = rs.Log
	}
	repo, err := gitsync.Open(ctx, gogit.New(), opts)
	var gerr *gitsync.Error
	switch {
	case err == nil:
		return repo, nil
	case errors.Is(err, gitsync.ErrCacheLocked), errors.As(err, &gerr):
		return nil, err
	default:
		// What Open refuses before touching the cache: the URL, branch
		// names, --path.
		return nil, &UsageError{err}
	}
}

// RemoteCommitter is the reconcile.Committer of a remote config
// repository. It commits nothing: it keeps the reconcile's commit message,
// with the spec commit as a Ferry-Source-Revision trailer, for
// gitsync.Repo.Publish, which commits and pushes in one step so that a
// rejected push can be fetched, re-rendered and committed on the new tip.
// Committing here would leave a commit on a tip that may already be stale.
type RemoteCommitter struct {
	// Revision is the spec commit the render is made from.
	Revision string
	message  string
}

var _ reconcile.Committer = (*RemoteCommitter)(nil)

// Commit implements reconcile.Committer by recording the message.
func (c *RemoteCommitter) Commit(_ context.Context, _, message string) (reconcile.Commit, error) {
	msg, err := gitsync.AppendTrailers(message, gitsync.Trailer{Key: gitsync.SourceRevisionTrailer, Value: c.Revision})
	if err != nil {
		return reconcile.Commit{}, err
	}
	c.message = msg
	return reconcile.Commit{}, nil
}

// Message is the recorded commit message, "" when the reconcile did not
// get as far as rendering.
func (c *RemoteCommitter) Message() string { return c.message }

// RunFunc is one whole pipeline run over the spec in dir: Reconcile, or a
// caller's version of it that reports as it goes (the CLI prints the plan
// and the copy's progress).
type RunFunc func(ctx context.Context, dir string, s Settings) (*Planned, *reconcile.Outcome, error)

// RepoOutcome is what ReconcileRepo did.
type RepoOutcome struct {
	// Revision is the spec commit the last run rendered.
	Revision string
	// Planned and Outcome are the last run's.
	Planned *Planned
	Outcome *reconcile.Outcome
	// Runs counts pipeline runs: 1, plus one per push rejected because
	// the branch moved.
	Runs int
	// Published is what was pushed; nil when no run got as far as
	// rendering.
	Published *gitsync.Published
}

// ReconcileRepo is `ferry reconcile --repo`: sync the clone to the tip of
// the branch, run the pipeline on it, and publish the render directory
// (one commit, with the spec commit as a trailer, pushed fast-forward
// only). When the push is rejected because someone pushed meanwhile,
// gitsync fetches the new tip and the whole pipeline runs again on it
// (the copy only sends what is still missing), up to the repository's
// push attempts; a new tip whose spec is invalid stops there, with nothing
// pushed (a *gitsync.RerenderError wrapping the pipeline's error).
//
// A run that failed in part (an image that could not be copied holds its
// catalog back) still publishes what it achieved, as `ferry reconcile DIR`
// commits it, and its error is returned after the push.
func ReconcileRepo(ctx context.Context, repo *gitsync.Repo, s Settings, run RunFunc) (*RepoOutcome, error) {
	if run == nil {
		run = func(ctx context.Context, dir string, s Settings) (*Planned, *reconcile.Outcome, error) {
			return Reconcile(ctx, dir, s, nil)
		}
	}
	res := &RepoOutcome{}
	var runErr error
	// once runs the pipeline on the checked-out tip and returns the commit
	// message of what it rendered ("" when it rendered nothing).
	once := func(ctx context.Context) (string, error) {
		c := &RemoteCommitter{Revision: repo.Revision()}
		s := s
		s.Commit, s.Committer = true, c
		p, out, err := run(ctx, repo.Dir(), s)
		res.Runs++
		res.Revision, res.Planned, res.Outcome = repo.Revision(), p, out
		runErr = err
		if c.Message() == "" && err == nil {
			err = errors.New("the pipeline rendered nothing to commit")
		}
		return c.Message(), err
	}
	if _, err := repo.Sync(ctx); err != nil {
		return res, err
	}
	msg, err := once(ctx)
	if msg == "" {
		return res, err
	}
	pub, err := repo.Publish(ctx, msg, func(ctx context.Context, _ string) (string, error) {
		msg, err := once(ctx)
		if msg == "" {
			return "", err
		}
		return msg, nil // a partial failure still publishes; runErr keeps it
	})
	res.Published = pub
	if err != nil {
		return res, err
	}
	return res, runErr
}
