package gitsync

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels callers branch on (with errors.Is). Backends wrap their own
// errors with these so the CLI and the daemon never look at go-git's.
var (
	// ErrNonFastForward: the remote branch moved since it was fetched, so
	// the push would have to overwrite someone else's commit. gitsync never
	// forces; Publish fetches, re-renders and tries again.
	ErrNonFastForward = errors.New("the remote branch moved (not a fast-forward)")
	// ErrReadOnly: a write was asked of a Repo opened read-only (diff --repo,
	// reconcile --dry-run --repo).
	ErrReadOnly = errors.New("repository opened read-only")
	// ErrAuthentication: the server refused the credentials, or wanted some
	// and got none.
	ErrAuthentication = errors.New("authentication failed")
	// ErrRepositoryNotFound: no repository at the URL (or one the
	// credentials may not see).
	ErrRepositoryNotFound = errors.New("repository not found")
	// ErrBranchNotFound: the branch does not exist on the remote.
	ErrBranchNotFound = errors.New("branch not found")
	// ErrUnknownHost: an SSH server whose host key is not in known_hosts.
	ErrUnknownHost = errors.New("ssh host key is not in known_hosts")
	// ErrHostKeyMismatch: an SSH server whose host key differs from the one
	// known_hosts lists for it.
	ErrHostKeyMismatch = errors.New("ssh host key does not match known_hosts")
	// ErrCacheLocked: another process holds the cache directory of this
	// repository and branch.
	ErrCacheLocked = errors.New("the repository cache is in use by another process")
)

// PushRejectedError is a push the remote (or the pre-push check) refused.
// It matches ErrNonFastForward when the cause is a moved branch, which
// fetching and re-rendering can fix; other refusals (a hook, a protected
// branch, a missing permission) cannot, and are reported as they are.
type PushRejectedError struct {
	// Branch is the remote branch the push was meant to update.
	Branch string
	// Reason is the refusal as the server or the check worded it.
	Reason string
	// NonFastForward says the branch moved since it was fetched.
	NonFastForward bool
}

func (e *PushRejectedError) Error() string {
	return fmt.Sprintf("push to branch %s rejected: %s", e.Branch, e.Reason)
}

// Is makes errors.Is(err, ErrNonFastForward) true for a moved branch.
func (e *PushRejectedError) Is(target error) bool {
	return target == ErrNonFastForward && e.NonFastForward
}

// RerenderError is returned by Publish when the callback it calls after a
// rejected push fails: the new tip of the branch cannot be rendered (its
// spec is invalid, or the plan cannot be applied). Nothing was pushed by
// that attempt; the remote holds whatever the other writer pushed.
type RerenderError struct {
	// Revision is the new tip the callback was asked to render.
	Revision string
	// Attempt is the push attempt that was rejected (1 = the first push).
	Attempt int
	// Err is the callback's error, unchanged, so the caller's own error
	// mapping (invalid input, failed apply) still works through Unwrap.
	Err error
}

func (e *RerenderError) Error() string {
	return fmt.Sprintf("re-render on the new tip %s after push attempt %d was rejected: %v", short(e.Revision), e.Attempt, e.Err)
}

func (e *RerenderError) Unwrap() error { return e.Err }

// Error is a failed git operation on the config repository. Its message
// has already been through Redact and has had every credential value
// removed, whatever the backend put in it.
type Error struct {
	// Op is the operation: clone, fetch, ls-remote, push, commit, checkout.
	Op string
	// URL is the repository, redacted.
	URL string
	// Err is the cause, for errors.Is and errors.As.
	Err error

	msg string
}

func (e *Error) Error() string { return e.msg }

func (e *Error) Unwrap() error { return e.Err }

// wrapErr builds an Error whose text is scrubbed of creds.
func wrapErr(op, url string, creds *Credentials, err error) error {
	if err == nil {
		return nil
	}
	url = Redact(url)
	return &Error{Op: op, URL: url, Err: err, msg: creds.scrub(fmt.Sprintf("git %s %s: %v", op, url, err))}
}

// short is the 12-character form of a commit hash, as messages show it.
func short(rev string) string {
	if len(rev) > 12 && !strings.ContainsAny(rev, "/ ") {
		return rev[:12]
	}
	return rev
}
