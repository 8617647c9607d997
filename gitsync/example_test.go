package gitsync_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/gitsync/gogit"
)

// How `ferry reconcile --repo` uses gitsync: credentials from the flags,
// the environment and a mounted Secret; one Sync; the pipeline renders into
// the work tree; Publish commits and pushes, re-running the pipeline on the
// new tip when someone pushed meanwhile. (Compiled, not run: it needs a
// repository.)
func Example() {
	ctx := context.Background()
	url := "https://git.example.com/platform/fleet.git"
	creds, err := gitsync.LoadCredentials(url, gitsync.CredentialSources{
		PasswordFile: "/etc/ferry/git/password", // --git-password-file
		SecretDir:    "/etc/ferry/git-secret",   // --git-secret-dir (Argo CD or Flux keys)
		Getenv:       os.Getenv,                 // FERRY_GIT_*
	})
	if err != nil {
		fmt.Println(err) // never holds a password
		return
	}
	opts := gitsync.DefaultOptions(url, filepath.Join(os.TempDir(), "ferry-git"))
	opts.Path = "clusters/prod" // --path
	opts.Credentials = creds
	opts.ReadOnly = false // true for diff --repo and reconcile --dry-run --repo
	repo, err := gitsync.Open(ctx, gogit.New(), opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer repo.Close()

	// pipeline stands for load spec -> plan -> apply -> render, reading
	// repo.Dir() and writing its render directory.
	pipeline := func(ctx context.Context, workTree string) (string, error) {
		return gitsync.AppendTrailers("ferry: reconcile (1 bundle added, 3 images copied)",
			gitsync.Trailer{Key: gitsync.SourceRevisionTrailer, Value: repo.Revision()})
	}
	if _, err := repo.Sync(ctx); err != nil {
		fmt.Println(err)
		return
	}
	msg, err := pipeline(ctx, repo.WorkTree())
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := repo.Publish(ctx, msg, pipeline)
	var stale *gitsync.RerenderError
	switch {
	case errors.As(err, &stale):
		fmt.Println("the new tip cannot be rendered; the remote is untouched:", stale.Err)
	case errors.Is(err, gitsync.ErrNonFastForward):
		fmt.Println("others kept pushing; try again on the next trigger")
	case err != nil:
		fmt.Println(err)
	case res.Commit == "":
		fmt.Println("render unchanged, nothing pushed")
	default:
		fmt.Printf("pushed %s to %s after %d attempt(s)\n", res.Commit[:12], res.Branch, res.Attempts)
	}
}

// How `ferry run` polls: Head is one ref listing; a new tip is reconciled
// only when it changes something outside the render directory.
func ExampleRepo_ChangedOutside() {
	ctx := context.Background()
	repo, err := gitsync.Open(ctx, gogit.New(), gitsync.DefaultOptions("https://git.example.com/fleet.git", os.TempDir()))
	if err != nil {
		return
	}
	defer repo.Close()
	last, _ := repo.Sync(ctx)
	// ... on each poll:
	tip, err := repo.Head(ctx)
	if err != nil || tip == last {
		return // nothing new: the poll cost one request
	}
	if _, err := repo.Sync(ctx); err != nil {
		return
	}
	changed, err := repo.ChangedOutside(ctx, last, tip, repo.RenderPath())
	if err == nil && !changed {
		return // Ferry's own commit, or a render-only edit: not new desired state
	}
	// ... reconcile on tip, then remember it as the last tip seen
}
