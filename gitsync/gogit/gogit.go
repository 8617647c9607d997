package gogit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/ferry-gitops/ferry/gitsync"
)

// remoteName is the one remote of a cache clone.
const remoteName = "origin"

// Backend opens go-git clones. The zero value is ready to use.
type Backend struct{}

// New returns the go-git Backend.
func New() *Backend { return &Backend{} }

var _ gitsync.Backend = (*Backend)(nil)

// Open implements gitsync.Backend. A directory that is not a repository
// whose origin is ep.URL (a clone killed half-way, a cache reused for
// another URL) is removed and initialised again: the cache is disposable.
func (*Backend) Open(ctx context.Context, dir string, ep gitsync.Endpoint) (gitsync.Clone, error) {
	u, err := gitsync.ParseRepoURL(ep.URL)
	if err != nil {
		return nil, err
	}
	if u.Clean != ep.URL {
		return nil, errors.New("gogit: Endpoint.URL must be clean (gitsync.ParseRepoURL's Clean)")
	}
	if err := os.MkdirAll(scratchDir(dir), 0o700); err != nil {
		return nil, err
	}
	a, err := newAccess(u, ep.Credentials, scratchDir(dir))
	if err != nil {
		return nil, err
	}
	repo, err := git.PlainOpen(dir)
	if err == nil && !ownedBy(repo, u.Clean) {
		err = errors.New("another remote")
	}
	if err != nil {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("reset cache: %w", err)
		}
		if repo, err = initClone(dir, u.Clean); err != nil {
			return nil, fmt.Errorf("init cache: %w", err)
		}
	}
	return &clone{repo: repo, dir: dir, access: a}, nil
}

// ownedBy reports whether repo is a cache clone of url.
func ownedBy(repo *git.Repository, url string) bool {
	r, err := repo.Remote(remoteName)
	if err != nil {
		return false
	}
	urls := r.Config().URLs
	return len(urls) == 1 && urls[0] == url
}

// initClone creates an empty repository whose origin is url: a clone that
// has fetched nothing yet. The URL written to .git/config is clean.
func initClone(dir, url string) (*git.Repository, error) {
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		return nil, err
	}
	_, err = repo.CreateRemote(&config.RemoteConfig{
		Name:  remoteName,
		URLs:  []string{url},
		Fetch: []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*"},
	})
	return repo, err
}

// clone implements gitsync.Clone.
type clone struct {
	repo   *git.Repository
	dir    string
	access *access
}

var _ gitsync.Clone = (*clone)(nil)

func (c *clone) Path() string { return c.dir }

func (c *clone) Close() error {
	if cl, ok := c.repo.Storer.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

func branchRef(b string) plumbing.ReferenceName { return plumbing.NewBranchReferenceName(b) }

func trackingRef(b string) plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(remoteName, b)
}

// List implements gitsync.Remote with one ref advertisement.
func (c *clone) List(ctx context.Context, branches ...string) (map[string]string, error) {
	r, err := c.repo.Remote(remoteName)
	if err != nil {
		return nil, err
	}
	refs, err := r.ListContext(ctx, &git.ListOptions{
		Auth: c.access.auth, CABundle: c.access.caBundle,
		ClientCert: c.access.clientCert, ClientKey: c.access.clientKy,
	})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, classify(err)
	}
	tips := map[string]string{}
	for _, ref := range refs {
		for _, b := range branches {
			if ref.Name() == branchRef(b) && ref.Type() == plumbing.HashReference {
				tips[b] = ref.Hash().String()
			}
		}
	}
	return tips, nil
}

// Fetch implements gitsync.Remote.
func (c *clone) Fetch(ctx context.Context, depth int, branches ...string) (map[string]string, error) {
	specs := make([]config.RefSpec, len(branches))
	for i, b := range branches {
		// Forced: these are our remote-tracking refs, which follow the
		// remote whatever happened there. Pushes never force.
		specs[i] = config.RefSpec("+" + branchRef(b).String() + ":" + trackingRef(b).String())
	}
	err := c.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName, RefSpecs: specs, Depth: depth, Tags: git.NoTags,
		Auth: c.access.auth, CABundle: c.access.caBundle,
		ClientCert: c.access.clientCert, ClientKey: c.access.clientKy,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, classify(err)
	}
	tips := map[string]string{}
	for _, b := range branches {
		ref, err := c.repo.Reference(trackingRef(b), false)
		if err != nil {
			return nil, fmt.Errorf("after fetch: %s: %w", b, err)
		}
		tips[b] = ref.Hash().String()
	}
	return tips, nil
}

// Push implements gitsync.Remote: a compare-and-swap on the remote branch
// (RequireRemoteRefs), then a non-forced update that go-git also checks is
// a fast-forward, and that the server applies only if the branch is still
// where it was advertised.
func (c *clone) Push(ctx context.Context, rev, branch, old string) error {
	dst := branchRef(branch).String()
	opts := &git.PushOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{config.RefSpec(rev + ":" + dst)},
		Auth:       c.access.auth, CABundle: c.access.caBundle,
		ClientCert: c.access.clientCert, ClientKey: c.access.clientKy,
	}
	if old != "" {
		opts.RequireRemoteRefs = []config.RefSpec{config.RefSpec(old + ":" + dst)}
	}
	err := c.repo.PushContext(ctx, opts)
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	if r := rejection(branch, err); r != nil {
		return r
	}
	return classify(err)
}

// rejection recognises a refused ref update. go-git words the client-side
// checks as plain errors and passes the server's report status on as text;
// the texts matched here are go-git v5's and git receive-pack's (pinned in
// go.mod, covered by tests against git http-backend).
func rejection(branch string, err error) *gitsync.PushRejectedError {
	msg := err.Error()
	for _, moved := range []string{
		"required to be",          // RequireRemoteRefs: the branch is not where we fetched it
		"non-fast-forward update", // go-git's own fast-forward check
		"non-fast-forward",        // receive-pack
		"fetch first",             // receive-pack: the remote has commits we lack
		"failed to lock",          // receive-pack: the ref moved while we pushed
		"cannot lock ref",         //
		"failed to update ref",    //
		"stale info",              //
	} {
		if strings.Contains(msg, moved) {
			return &gitsync.PushRejectedError{Branch: branch, Reason: msg, NonFastForward: true}
		}
	}
	if strings.HasPrefix(msg, "command error on ") || strings.Contains(msg, "hook declined") {
		return &gitsync.PushRejectedError{Branch: branch, Reason: msg}
	}
	return nil
}

// classify wraps transport errors with the gitsync sentinels callers
// branch on.
func classify(err error) error {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(err.Error(), "unable to authenticate"):
		return fmt.Errorf("%w: %w", gitsync.ErrAuthentication, err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%w: %w", gitsync.ErrRepositoryNotFound, err)
	}
	return err
}

// Checkout implements gitsync.WorkingCopy.
func (c *clone) Checkout(ctx context.Context, rev string) error {
	wt, err := c.repo.Worktree()
	if err != nil {
		return err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: plumbing.NewHash(rev), Force: true}); err != nil {
		return err
	}
	return wt.Clean(&git.CleanOptions{Dir: true})
}

// Commit implements gitsync.WorkingCopy with gitsync.SelectChanges' rule.
func (c *clone) Commit(ctx context.Context, req gitsync.CommitRequest) (gitsync.CommitResult, error) {
	wt, err := c.repo.Worktree()
	if err != nil {
		return gitsync.CommitResult{}, err
	}
	status, err := wt.Status()
	if err != nil {
		return gitsync.CommitResult{}, fmt.Errorf("status: %w", err)
	}
	files := make([]gitsync.FileStatus, 0, len(status))
	for p, st := range status {
		files = append(files, gitsync.FileStatus{
			Path:    p,
			Staged:  st.Staging != git.Unmodified && st.Staging != git.Untracked,
			Changed: st.Staging != git.Unmodified || st.Worktree != git.Unmodified,
		})
	}
	paths, err := gitsync.SelectChanges(files, req.Dir)
	if err != nil || len(paths) == 0 {
		return gitsync.CommitResult{}, err
	}
	if err := stage(wt, status, req.Dir, paths); err != nil {
		return gitsync.CommitResult{}, err
	}
	// Whether anything changed was decided above, against the checked-out
	// revision; the tree may still equal a parent's (a push branch that
	// already holds this render), which the caller compares.
	opts := &git.CommitOptions{Author: signature(req.Author), Committer: signature(req.Committer), AllowEmptyCommits: true}
	for _, p := range req.Parents {
		opts.Parents = append(opts.Parents, plumbing.NewHash(p))
	}
	hash, err := wt.Commit(req.Message, opts)
	if err != nil {
		return gitsync.CommitResult{}, err
	}
	commit, err := c.repo.CommitObject(hash)
	if err != nil {
		return gitsync.CommitResult{}, err
	}
	return gitsync.CommitResult{Hash: hash.String(), Tree: commit.TreeHash.String(), Files: paths}, nil
}

// stage adds paths, all under dir, to the index. One directory add costs
// one status walk and one index write; adding file by file would cost a
// status walk per file (go-git's Add runs one each time), which takes
// minutes for a render of a thousand files.
func stage(wt *git.Worktree, status git.Status, dir string, paths []string) error {
	if dir == "" {
		dir = "."
	}
	if _, err := wt.Filesystem.Lstat(dir); err == nil {
		if err := wt.AddWithOptions(&git.AddOptions{Path: dir}); err != nil {
			return fmt.Errorf("add %s: %w", dir, err)
		}
		return nil
	}
	// The whole directory is gone: remove its files one by one.
	for _, p := range paths {
		if status.File(p).Worktree != git.Deleted {
			return fmt.Errorf("add %s: %s is missing but %s is not deleted", p, dir, p)
		}
		if _, err := wt.Remove(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

func signature(s gitsync.Signature) *object.Signature {
	when := s.When
	if when.IsZero() {
		when = time.Now()
	}
	return &object.Signature{Name: s.Name, Email: s.Email, When: when}
}

// commit returns rev's commit, nil when the clone does not hold it.
func (c *clone) commit(rev string) (*object.Commit, error) {
	h := plumbing.NewHash(rev)
	if h.IsZero() || h.String() != strings.ToLower(rev) {
		return nil, fmt.Errorf("%q is not a commit hash", rev)
	}
	commit, err := c.repo.CommitObject(h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, nil
	}
	return commit, err
}

// Has implements gitsync.History.
func (c *clone) Has(ctx context.Context, rev string) (bool, error) {
	commit, err := c.commit(rev)
	return commit != nil, err
}

// IsAncestor implements gitsync.History; history missing from a shallow
// clone answers false.
func (c *clone) IsAncestor(ctx context.Context, ancestor, rev string) (bool, error) {
	a, err := c.commit(ancestor)
	if err != nil || a == nil {
		return false, err
	}
	r, err := c.commit(rev)
	if err != nil || r == nil {
		return false, err
	}
	ok, err := a.IsAncestor(r)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return false, nil
	}
	return ok, err
}

// ChangedPaths implements gitsync.History.
func (c *clone) ChangedPaths(ctx context.Context, from, to string) ([]string, error) {
	var trees [2]*object.Tree
	for i, rev := range []string{from, to} {
		commit, err := c.commit(rev)
		if err != nil {
			return nil, err
		}
		if commit == nil {
			return nil, fmt.Errorf("commit %s: %w", rev, plumbing.ErrObjectNotFound)
		}
		if trees[i], err = commit.Tree(); err != nil {
			return nil, err
		}
	}
	changes, err := object.DiffTreeWithOptions(ctx, trees[0], trees[1], &object.DiffTreeOptions{})
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, ch := range changes {
		for _, name := range []string{ch.From.Name, ch.To.Name} {
			if name != "" {
				paths = append(paths, name)
			}
		}
	}
	sort.Strings(paths)
	return slices.Compact(paths), nil
}

// Tree implements gitsync.History.
func (c *clone) Tree(ctx context.Context, rev string) (string, error) {
	commit, err := c.commit(rev)
	if err != nil {
		return "", err
	}
	if commit == nil {
		return "", fmt.Errorf("commit %s: %w", rev, plumbing.ErrObjectNotFound)
	}
	return commit.TreeHash.String(), nil
}
