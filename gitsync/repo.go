package gitsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Options configure a Repo: which repository and branch, where its cache
// lives, who signs Ferry's commits and how a rejected push is retried. The
// CLI fills them from --repo, --branch, --path, --push-branch and
// --cache-dir.
type Options struct {
	// URL is the repository, in any form ParseRepoURL accepts; user info
	// in it is used as credentials and stored nowhere.
	URL string
	// Branch is the branch holding the spec (default "main").
	Branch string
	// PushBranch, when set, receives Ferry's commits instead of Branch,
	// for review by pull request (see Publish).
	PushBranch string
	// Path is the spec directory inside the repository, slash-separated
	// (default: the root).
	Path string
	// RenderDir is the render directory, relative to Path (default
	// "rendered"), the only directory Ferry commits.
	RenderDir string
	// CacheDir holds the clones, one directory per URL and branch (see
	// CacheKey). Required.
	CacheDir string
	// Credentials authenticate; nil means only what the URL carries (see
	// LoadCredentials for the other sources).
	Credentials *Credentials
	// ReadOnly refuses every write to the remote: Publish returns
	// ErrReadOnly. diff --repo and reconcile --dry-run --repo open the
	// repository this way.
	ReadOnly bool
	// FullHistory fetches whole history. The default fetches only the tips
	// (depth 1): Ferry reads one revision, and commits on top of the tip it
	// fetched, which a shallow clone can push.
	FullHistory bool
	// Author and Committer sign Ferry's commits (default Ferry
	// <ferry@localhost>; Committer defaults to Author).
	Author, Committer Signature
	// PushAttempts bounds Publish's pushes (default 5).
	PushAttempts int
	// Backoff is the wait before the second push attempt, doubled for each
	// further one up to MaxBackoff (defaults 1s and 30s).
	Backoff, MaxBackoff time.Duration
	// Log receives one line per fetch and push, URLs redacted; nil is silent.
	Log *slog.Logger
}

// DefaultOptions returns Options with every default filled in for url and
// cacheDir.
func DefaultOptions(url, cacheDir string) Options {
	o := Options{URL: url, CacheDir: cacheDir}
	o.defaults()
	return o
}

func (o *Options) defaults() {
	if o.Branch == "" {
		o.Branch = "main"
	}
	if o.RenderDir == "" {
		o.RenderDir = "rendered"
	}
	if o.Author.Name == "" {
		o.Author.Name = "Ferry"
	}
	if o.Author.Email == "" {
		o.Author.Email = "ferry@localhost"
	}
	if o.Committer.Name == "" && o.Committer.Email == "" {
		o.Committer = o.Author
	}
	if o.PushAttempts <= 0 {
		o.PushAttempts = 5
	}
	if o.Backoff == 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// branchName is what git check-ref-format accepts for a branch, less the
// rare forms nobody uses for a config repo.
var branchName = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

func checkBranch(flag, b string) error {
	if !branchName.MatchString(b) || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") ||
		strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".lock") || strings.Contains(b, "..") ||
		strings.Contains(b, "//") || strings.HasPrefix(b, "refs/") {
		return fmt.Errorf("%s %q is not a branch name", flag, b)
	}
	return nil
}

// Repo is a remote config repository cloned into a cache directory: the
// spec is read from its work tree, the render is committed there and
// pushed back. One Repo serves one reconcile loop; its methods are not safe
// for concurrent use. Close it to release the cache lock.
type Repo struct {
	opts  Options
	url   RepoURL
	clone Clone
	lock  io.Closer
	dir   string

	tip, pushTip string // as of the last Sync; pushTip "" when PushBranch is absent
}

// CacheKey names the cache directory of a repository URL (user info
// stripped) and branch: readable, and unique through a hash of both.
func CacheKey(url RepoURL, branch string) string {
	sum := sha256.Sum256([]byte(url.Clean + "\x00" + branch))
	name := url.Clean
	if i := strings.Index(name, "://"); i >= 0 {
		name = name[i+len("://"):]
	}
	name = strings.Trim(unsafeInName.ReplaceAllString(name+"-"+branch, "_"), "_.-")
	if len(name) > 64 {
		name = name[:64]
	}
	return name + "-" + hex.EncodeToString(sum[:])[:16]
}

var unsafeInName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Open opens (or creates) the cache of opts.URL and opts.Branch under
// opts.CacheDir and locks it, so two processes sharing a cache directory
// never interleave on one work tree. It does not touch the network: Sync
// does.
func Open(ctx context.Context, backend Backend, opts Options) (*Repo, error) {
	opts.defaults()
	u, err := ParseRepoURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if opts.CacheDir == "" {
		return nil, errors.New("gitsync: Options.CacheDir is required")
	}
	if err := checkBranch("--branch", opts.Branch); err != nil {
		return nil, err
	}
	if opts.PushBranch != "" {
		if err := checkBranch("--push-branch", opts.PushBranch); err != nil {
			return nil, err
		}
		if opts.PushBranch == opts.Branch {
			opts.PushBranch = ""
		}
	}
	if _, err := dirPrefix(opts.Path); err != nil {
		return nil, fmt.Errorf("--path: %w", err)
	}
	if _, err := dirPrefix(path.Join(opts.Path, opts.RenderDir)); err != nil {
		return nil, fmt.Errorf("render directory: %w", err)
	}
	creds := opts.Credentials
	if creds == nil {
		creds = &Credentials{}
	}
	// The URL's user info fills what the caller did not give.
	merged := *creds
	if u.Transport == TransportHTTP {
		merged.Username = first(u.User, merged.Username)
		merged.Password = first(u.Password, merged.Password)
	}
	opts.Credentials = &merged
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	dir := filepath.Join(opts.CacheDir, CacheKey(u, opts.Branch))
	lock, err := lockFile(dir + ".lock")
	if err != nil {
		return nil, err
	}
	clone, err := backend.Open(ctx, dir, Endpoint{URL: u.Clean, Credentials: opts.Credentials})
	if err != nil {
		lock.Close()
		return nil, wrapErr("open cache of", u.Clean, opts.Credentials, err)
	}
	return &Repo{opts: opts, url: u, clone: clone, lock: lock, dir: dir}, nil
}

// Close releases the clone and the cache lock.
func (r *Repo) Close() error {
	return errors.Join(r.clone.Close(), r.lock.Close())
}

// URL is the repository URL as it may be printed: no user info.
func (r *Repo) URL() string { return Redact(r.url.Clean) }

// WorkTree is the root of the checked-out repository.
func (r *Repo) WorkTree() string { return r.clone.Path() }

// Dir is the spec directory: the work tree joined with Options.Path.
func (r *Repo) Dir() string { return filepath.Join(r.clone.Path(), filepath.FromSlash(r.opts.Path)) }

// RenderPath is the render directory relative to the repository root,
// slash-separated: what ChangedOutside takes.
func (r *Repo) RenderPath() string { return path.Clean(path.Join(r.opts.Path, r.opts.RenderDir)) }

// Branch is the branch the spec is read from (Options.Branch, defaulted).
func (r *Repo) Branch() string { return r.opts.Branch }

// Revision is the tip of Branch checked out by the last Sync ("" before).
func (r *Repo) Revision() string { return r.tip }

// ReadOnly reports whether writes are refused.
func (r *Repo) ReadOnly() bool { return r.opts.ReadOnly }

func (r *Repo) fail(op string, err error) error {
	return wrapErr(op, r.url.Clean, r.opts.Credentials, err)
}

// Head returns the tip of Branch on the remote with one ref advertisement
// (ls-remote) and nothing else: what a poll costs when nothing changed. It
// fetches nothing and leaves the work tree alone.
func (r *Repo) Head(ctx context.Context) (string, error) {
	tips, err := r.clone.List(ctx, r.opts.Branch)
	if err != nil {
		return "", r.fail("ls-remote", err)
	}
	tip, ok := tips[r.opts.Branch]
	if !ok {
		return "", r.fail("ls-remote", fmt.Errorf("%w: %s", ErrBranchNotFound, r.opts.Branch))
	}
	return tip, nil
}

// Sync brings the work tree to the remote tip of Branch and returns it. It
// costs one ls-remote when the clone already has the tip (no fetch), and a
// fetch of the new commits only otherwise: the clone is kept between runs.
// The work tree ends up exactly at the tip, so files a failed run left in
// it never reach a commit. With PushBranch it fetches that branch too.
func (r *Repo) Sync(ctx context.Context) (string, error) {
	branches := []string{r.opts.Branch}
	if r.opts.PushBranch != "" {
		branches = append(branches, r.opts.PushBranch)
	}
	tips, err := r.clone.List(ctx, branches...)
	if err != nil {
		return "", r.fail("ls-remote", err)
	}
	if _, ok := tips[r.opts.Branch]; !ok {
		return "", r.fail("fetch", fmt.Errorf("%w: %s", ErrBranchNotFound, r.opts.Branch))
	}
	var fetch []string
	for _, b := range branches {
		tip, ok := tips[b]
		if !ok {
			continue
		}
		has, err := r.clone.Has(ctx, tip)
		if err != nil {
			return "", r.fail("fetch", err)
		}
		if !has {
			fetch = append(fetch, b)
		}
	}
	if len(fetch) > 0 {
		depth := 1
		if r.opts.FullHistory {
			depth = 0
		}
		fetched, err := r.clone.Fetch(ctx, depth, fetch...)
		if err != nil {
			return "", r.fail("fetch", err)
		}
		// The branch may have moved between the listing and the fetch; what
		// was fetched is what the clone has.
		for b, tip := range fetched {
			tips[b] = tip
		}
	}
	tip := tips[r.opts.Branch]
	if err := r.clone.Checkout(ctx, tip); err != nil {
		return "", r.fail("checkout", err)
	}
	if err := r.checkPath(); err != nil {
		return "", err
	}
	r.tip, r.pushTip = tip, tips[r.opts.PushBranch]
	r.opts.Log.Info("git sync", "url", r.URL(), "branch", r.opts.Branch, "revision", tip, "fetched", len(fetch) > 0)
	return tip, nil
}

// checkPath refuses a spec directory that is missing or reached through a
// symbolic link at the checked-out revision: a repository must not be able
// to point Ferry at files outside it.
func (r *Repo) checkPath() error {
	if r.opts.Path == "" || r.opts.Path == "." {
		return nil
	}
	p := r.clone.Path()
	for _, part := range strings.Split(path.Clean(r.opts.Path), "/") {
		p = filepath.Join(p, part)
		info, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("--path %s: not in the repository at this revision", r.opts.Path)
		}
		if !info.IsDir() {
			return fmt.Errorf("--path %s: %s is not a directory (symbolic links are refused)", r.opts.Path, filepath.ToSlash(strings.TrimPrefix(p, r.clone.Path()+string(filepath.Separator))))
		}
	}
	return nil
}

// ChangedOutside reports whether anything outside dir (slash-separated,
// relative to the repository root, usually RenderPath) differs between
// commits old and new. A daemon that sees a new tip calls it to tell new
// desired state from its own render commits (or anyone's edits of the
// render directory alone), which must not trigger a reconcile. An old
// revision the clone does not hold (a restart, a history rewritten
// upstream) counts as changed: reconciling once too often is safe,
// missing a change is not.
func (r *Repo) ChangedOutside(ctx context.Context, old, new, dir string) (bool, error) {
	if old == new {
		return false, nil
	}
	for _, rev := range []string{old, new} {
		has, err := r.clone.Has(ctx, rev)
		if err != nil {
			return false, r.fail("diff", err)
		}
		if !has {
			return true, nil
		}
	}
	paths, err := r.clone.ChangedPaths(ctx, old, new)
	if err != nil {
		return false, r.fail("diff", err)
	}
	return Outside(paths, dir)
}

// ChangedPaths lists the paths that differ between two commits the clone
// holds (see ChangedOutside).
func (r *Repo) ChangedPaths(ctx context.Context, old, new string) ([]string, error) {
	paths, err := r.clone.ChangedPaths(ctx, old, new)
	if err != nil {
		return nil, r.fail("diff", err)
	}
	return paths, nil
}
