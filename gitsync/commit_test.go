package gitsync

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

func write(t *testing.T, dir, rel, body string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newRepo is a work tree with one commit holding a spec and a render.
func newRepo(t *testing.T) (string, *git.Repository) {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "specs/catalog.yaml", "kind: Catalog\n")
	write(t, dir, "specs/rendered/a.yaml", "a\n")
	write(t, dir, "specs/rendered/b.yaml", "b\n")
	wt, _ := repo.Worktree()
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "t", Email: "t@example.com"}
	if _, err := wt.Commit("init", &git.CommitOptions{Author: sig}); err != nil {
		t.Fatal(err)
	}
	return dir, repo
}

func TestCommit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, dir string, wt *git.Worktree)
		files   []string // committed, nil for no commit
		wantErr bool
	}{
		{name: "nothing changed, no commit"},
		{
			name: "changes, additions and deletions in the render directory only",
			change: func(t *testing.T, dir string, _ *git.Worktree) {
				write(t, dir, "specs/rendered/a.yaml", "a2\n")
				write(t, dir, "specs/rendered/new/c.yaml", "c\n")
				os.Remove(filepath.Join(dir, "specs/rendered/b.yaml"))
				write(t, dir, "specs/catalog.yaml", "kind: Catalog # edited, not staged\n")
				write(t, dir, "notes.txt", "untracked\n")
			},
			files: []string{"specs/rendered/a.yaml", "specs/rendered/b.yaml", "specs/rendered/new/c.yaml"},
		},
		{
			name: "the whole render directory removed",
			change: func(t *testing.T, dir string, _ *git.Worktree) {
				if err := os.RemoveAll(filepath.Join(dir, "specs/rendered")); err != nil {
					t.Fatal(err)
				}
			},
			files: []string{"specs/rendered/a.yaml", "specs/rendered/b.yaml"},
		},
		{
			name: "changes staged elsewhere are not swept into Ferry's commit",
			change: func(t *testing.T, dir string, wt *git.Worktree) {
				write(t, dir, "specs/rendered/a.yaml", "a2\n")
				write(t, dir, "specs/catalog.yaml", "kind: Catalog # staged\n")
				if _, err := wt.Add("specs/catalog.yaml"); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, repo := newRepo(t)
			wt, _ := repo.Worktree()
			before, _ := repo.Head()
			if tc.change != nil {
				tc.change(t, dir, wt)
			}
			c, err := Commit(filepath.Join(dir, "specs"), filepath.Join(dir, "specs/rendered"), "ferry: reconcile")
			if tc.wantErr {
				var se *StagedElsewhereError
				if !errors.As(err, &se) || se.Paths[0] != "specs/catalog.yaml" {
					t.Fatalf("err %v, want StagedElsewhereError naming specs/catalog.yaml", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			after, _ := repo.Head()
			if tc.files == nil {
				if !c.Hash.IsZero() || after.Hash() != before.Hash() {
					t.Fatalf("committed %v with nothing changed", c.Hash)
				}
				return
			}
			if after.Hash() != c.Hash {
				t.Fatalf("HEAD %s, want the new commit %s", after.Hash(), c.Hash)
			}
			if len(c.Files) != len(tc.files) {
				t.Fatalf("committed %v, want %v", c.Files, tc.files)
			}
			for i := range tc.files {
				if c.Files[i] != tc.files[i] {
					t.Errorf("committed %v, want %v", c.Files, tc.files)
				}
			}
			st, err := wt.Status()
			if err != nil {
				t.Fatal(err)
			}
			for p, s := range st {
				if strings.HasPrefix(p, "specs/rendered/") && (s.Worktree != git.Unmodified || s.Staging != git.Unmodified) {
					t.Errorf("%s still modified after the commit", p)
				}
			}
			if s, ok := st["specs/catalog.yaml"]; ok && s.Staging != git.Unmodified {
				t.Errorf("the unstaged spec edit was committed or staged: %+v", s)
			}
		})
	}
}

func TestCommitOutsideWorkTree(t *testing.T) {
	dir := t.TempDir()
	if _, err := Commit(dir, filepath.Join(dir, "rendered"), "m"); !errors.Is(err, ErrNotWorkTree) {
		t.Fatalf("err %v, want ErrNotWorkTree", err)
	}
}
