package mirror

import (
	"context"
	"sync"
)

// flights runs a keyed piece of work once per run: concurrent callers of the
// same key wait for the one doing it, later callers return at once, and a
// failure lets the next caller try again (its own retries may succeed where
// the first caller's did not).
type flights struct {
	mu       sync.Mutex
	done     map[string]bool
	inflight map[string]chan struct{}
}

// do runs fn for key unless it already succeeded in this run; ran says
// whether this caller's fn did the work.
func (f *flights) do(ctx context.Context, key string, fn func() error) (ran bool, err error) {
	for {
		f.mu.Lock()
		if f.done == nil {
			f.done, f.inflight = map[string]bool{}, map[string]chan struct{}{}
		}
		if f.done[key] {
			f.mu.Unlock()
			return false, nil
		}
		if ch, ok := f.inflight[key]; ok {
			f.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return false, ctx.Err()
			}
		}
		ch := make(chan struct{})
		f.inflight[key] = ch
		f.mu.Unlock()

		err := fn()

		f.mu.Lock()
		delete(f.inflight, key)
		if err == nil {
			f.done[key] = true
		}
		close(ch)
		f.mu.Unlock()
		return true, err
	}
}

// blobTable is what a run knows about the blobs of one destination
// registry: which repositories hold each blob (put there, mounted, or found
// by a HEAD during this run), and which transfers are under way. It is what
// makes "each unique blob uploaded at most once per run" hold under
// concurrency: while a blob's first upload is in flight, every other
// repository that needs it waits, then mounts it from there.
type blobTable struct {
	mu sync.Mutex
	m  map[string]*blobEntry
}

type blobEntry struct {
	repos     []string                 // repositories known to hold the blob, in the order learned
	has       map[string]bool          // same, as a set
	hints     []string                 // repositories said to hold it by an earlier run (BlobHints)
	pending   map[string]chan struct{} // repository -> transfer in flight
	uploading chan struct{}            // the transfer with nothing to mount from
}

// claim is a caller's turn at putting a blob into repo.
type claim struct {
	// known: the blob is already in repo (this run saw it); nothing to do.
	known bool
	// from is a repository of the same registry that holds the blob, to
	// mount from; empty means upload.
	from string
	// done ends the turn: ok when the blob is now in the repository,
	// mounted when it got there by a mount.
	done func(ok, mounted bool)
}

// claim returns the caller's turn for digest in repo, waiting while
// another transfer of the same blob could make this one a mount or
// unnecessary.
func (t *blobTable) claim(ctx context.Context, digest, repo string) (claim, error) {
	for {
		t.mu.Lock()
		if t.m == nil {
			t.m = map[string]*blobEntry{}
		}
		e := t.m[digest]
		if e == nil {
			e = &blobEntry{has: map[string]bool{}, pending: map[string]chan struct{}{}}
			t.m[digest] = e
		}
		if e.has[repo] {
			t.mu.Unlock()
			return claim{known: true}, nil
		}
		wait := e.pending[repo]
		if wait == nil && len(e.repos) == 0 && len(e.hints) == 0 {
			wait = e.uploading
		}
		if wait != nil {
			t.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return claim{}, ctx.Err()
			}
		}
		ch := make(chan struct{})
		e.pending[repo] = ch
		c := claim{}
		hint := false
		switch {
		case len(e.repos) > 0:
			c.from = e.repos[0]
		case len(e.hints) > 0:
			c.from, hint = e.hints[0], true
		default:
			e.uploading = ch
		}
		t.mu.Unlock()
		c.done = func(ok, mounted bool) {
			t.mu.Lock()
			defer t.mu.Unlock()
			delete(e.pending, repo)
			if e.uploading == ch {
				e.uploading = nil
			}
			if ok {
				e.learn(repo)
			}
			if hint && ok && !mounted && len(e.hints) > 0 && e.hints[0] == c.from {
				// The hint was stale (the mount fell back to an upload).
				e.hints = e.hints[1:]
			}
			close(ch)
		}
		return c, nil
	}
}

// hint records that an earlier run saw digest in repo.
func (t *blobTable) hint(digest, repo string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*blobEntry{}
	}
	e := t.m[digest]
	if e == nil {
		e = &blobEntry{has: map[string]bool{}, pending: map[string]chan struct{}{}}
		t.m[digest] = e
	}
	e.hints = append(e.hints, repo)
}

// locations returns, for every blob the table knows, one repository
// holding it: learned in this run, else still-unrefuted hints.
func (t *blobTable) locations() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]string, len(t.m))
	for d, e := range t.m {
		switch {
		case len(e.repos) > 0:
			out[d] = e.repos[0]
		case len(e.hints) > 0:
			out[d] = e.hints[0]
		}
	}
	return out
}

func (e *blobEntry) learn(repo string) {
	if !e.has[repo] {
		e.has[repo] = true
		e.repos = append(e.repos, repo)
	}
}
