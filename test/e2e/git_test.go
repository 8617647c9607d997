package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

func TestGitServer(t *testing.T) {
	t.Parallel()
	srv := testenv.StartGitServer(t, testenv.GitOptions{})
	url := srv.Seed("fleet", map[string]string{"README.md": "fleet config\n"})
	bare := srv.BareDir("fleet")

	dir := t.TempDir()
	repo, err := git.PlainCloneContext(t.Context(), dir, false, &git.CloneOptions{URL: url, Auth: srv.Auth()})
	if err != nil {
		t.Fatalf("clone %s: %v", url, err)
	}
	pushed := commitFile(t, repo, dir, "catalogs.yaml", "catalogs: []\n", "add catalogs")
	if err := repo.PushContext(t.Context(), &git.PushOptions{Auth: srv.Auth()}); err != nil {
		t.Fatalf("push: %v", err)
	}

	// The git CLI reading the bare repository is the independent witness
	// that go-git's push really landed.
	out, err := srv.Git("", "--git-dir", bare, "log", "--format=%H %s", "main")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if want := pushed.String() + " add catalogs"; lines[0] != want {
		t.Fatalf("git log main: head is %q, want %q\n%s", lines[0], want, out)
	}
	if len(lines) != 2 {
		t.Errorf("git log main: %d commits, want seed + pushed:\n%s", len(lines), out)
	}

	t.Run("wrong password is refused", func(t *testing.T) {
		commitFile(t, repo, dir, "catalogs.yaml", "catalogs: [x]\n", "should not land")
		wrong := &githttp.BasicAuth{Username: srv.Username, Password: srv.Password + "x"}
		err := repo.PushContext(t.Context(), &git.PushOptions{Auth: wrong})
		if !errors.Is(err, transport.ErrAuthenticationRequired) {
			t.Errorf("push with wrong password: got %v, want %v", err, transport.ErrAuthenticationRequired)
		}
		head, err := srv.Git("", "--git-dir", bare, "rev-parse", "main")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(head) != pushed.String() {
			t.Errorf("main moved to %s after a refused push, want %s", strings.TrimSpace(head), pushed)
		}
	})

	t.Run("anonymous clone is refused", func(t *testing.T) {
		_, err := git.PlainCloneContext(t.Context(), t.TempDir(), false, &git.CloneOptions{URL: url})
		if !errors.Is(err, transport.ErrAuthenticationRequired) {
			t.Errorf("anonymous clone: got %v, want %v", err, transport.ErrAuthenticationRequired)
		}
	})
}

// commitFile writes path in the worktree at dir and commits it.
func commitFile(t *testing.T, repo *git.Repository, dir, path, content, msg string) plumbing.Hash {
	t.Helper()
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, path), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Add(path); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Ferry E2E", Email: "e2e@ferry.invalid", When: time.Now()}
	hash, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return hash
}
