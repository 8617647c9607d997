package gitsync_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/gitsync/gogit"
)

// Tests on a bare repository in a temporary directory, reached through the
// file transport: no server needed.

// localRepo makes a bare repository whose main holds files, with the git
// CLI, and returns its path.
func localRepo(t testing.TB, files map[string]string, links map[string]string) string {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git CLI")
	}
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(gitBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir(),
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@ferry.invalid", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@ferry.invalid")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	work, bare := t.TempDir(), filepath.Join(t.TempDir(), "fleet.git")
	run(work, "init", "--quiet", "--initial-branch=main")
	for p, c := range files {
		writeFile(t, work, p, c)
	}
	for p, target := range links {
		if err := os.Symlink(target, filepath.Join(work, p)); err != nil {
			t.Fatal(err)
		}
	}
	run(work, "add", "--all")
	run(work, "commit", "--quiet", "-m", "seed")
	run(work, "clone", "--quiet", "--bare", work, bare)
	return bare
}

func TestOpenLocksTheCache(t *testing.T) {
	url := localRepo(t, fleet, nil)
	opts := gitsync.DefaultOptions(url, t.TempDir())
	r := open(t, opts)
	if _, err := gitsync.Open(t.Context(), gogit.New(), opts); !errors.Is(err, gitsync.ErrCacheLocked) {
		t.Fatalf("second Open of one cache: %v, want ErrCacheLocked", err)
	}
	other := opts
	other.Branch = "prod"
	if r2, err := gitsync.Open(t.Context(), gogit.New(), other); err != nil {
		t.Errorf("another branch has its own cache, but: %v", err)
	} else {
		r2.Close()
	}
	r.Close()
	if r3, err := gitsync.Open(t.Context(), gogit.New(), opts); err != nil {
		t.Errorf("Open after Close: %v", err)
	} else {
		r3.Close()
	}
}

func TestOpenAndSyncRefuse(t *testing.T) {
	url := localRepo(t, map[string]string{"clusters/prod/catalog.yaml": "x\n", "file": "f\n"}, map[string]string{"clusters/link": "prod"})
	for _, tc := range []struct {
		name    string
		change  func(o *gitsync.Options)
		wantErr string
		is      error
	}{
		{name: "a path through a symbolic link", change: func(o *gitsync.Options) { o.Path = "clusters/link" }, wantErr: "clusters/link is not a directory (symbolic links are refused)"},
		{name: "a path that is a file", change: func(o *gitsync.Options) { o.Path = "file" }, wantErr: "is not a directory"},
		{name: "a missing path", change: func(o *gitsync.Options) { o.Path = "clusters/dev" }, wantErr: "--path clusters/dev: not in the repository"},
		{name: "a path leaving the repository", change: func(o *gitsync.Options) { o.Path = "../x" }, wantErr: "--path"},
		{name: "a render directory leaving the repository", change: func(o *gitsync.Options) { o.RenderDir = "../../x" }, wantErr: "render directory"},
		{name: "a bad branch", change: func(o *gitsync.Options) { o.Branch = "-x" }, wantErr: `--branch "-x" is not a branch name`},
		{name: "a missing branch", change: func(o *gitsync.Options) { o.Branch = "prod" }, is: gitsync.ErrBranchNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := gitsync.DefaultOptions(url, t.TempDir())
			tc.change(&opts)
			r, err := gitsync.Open(t.Context(), gogit.New(), opts)
			if err == nil {
				defer r.Close()
				_, err = r.Sync(t.Context())
			}
			if err == nil || tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) || tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err %v, want %q %v", err, tc.wantErr, tc.is)
			}
		})
	}
}

func TestCacheOfAnotherURLIsReplaced(t *testing.T) {
	a := localRepo(t, map[string]string{"rendered/a": "a\n"}, nil)
	b := localRepo(t, map[string]string{"rendered/b": "b\n"}, nil)
	cache := t.TempDir()
	r := open(t, gitsync.DefaultOptions(a, cache))
	sync(t, r)
	dir := r.WorkTree()
	r.Close()
	// The same directory, now claimed by another URL (as a hash collision
	// or a hand-edited cache would): it must be rebuilt, not trusted.
	other := filepath.Join(cache, gitsync.CacheKey(mustParse(t, b), "main"))
	if err := os.Rename(dir, other); err != nil {
		t.Fatal(err)
	}
	r = open(t, gitsync.DefaultOptions(b, cache))
	sync(t, r)
	if _, err := os.Stat(filepath.Join(r.Dir(), "rendered/b")); err != nil {
		t.Errorf("the work tree is not b's: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), "rendered/a")); err == nil {
		t.Error("a's files survived in b's cache")
	}
}

func TestPublishNeedsSync(t *testing.T) {
	r := open(t, gitsync.DefaultOptions(localRepo(t, fleet, nil), t.TempDir()))
	if _, err := r.Publish(t.Context(), "m", nil); err == nil {
		t.Error("Publish before Sync did not fail")
	}
}

func mustParse(t *testing.T, url string) gitsync.RepoURL {
	t.Helper()
	u, err := gitsync.ParseRepoURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPublishDeletesAndAdds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
		want   []string
	}{
		{
			name: "the render directory removed whole",
			change: func(t *testing.T, dir string) {
				if err := os.RemoveAll(filepath.Join(dir, "rendered")); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"clusters/prod/rendered/a/cs.yaml", "clusters/prod/rendered/ferry.lock"},
		},
		{
			name: "a file replaced by another, spec edit left out",
			change: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, "rendered/ferry.lock"))
				writeFile(t, dir, "rendered/b/cs.yaml", "b\n")
				writeFile(t, dir, "catalog.yaml", "edited\n")
			},
			want: []string{"clusters/prod/rendered/b/cs.yaml", "clusters/prod/rendered/ferry.lock"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bare := localRepo(t, fleet, nil)
			opts := gitsync.DefaultOptions(bare, t.TempDir())
			opts.Path = "clusters/prod"
			r := open(t, opts)
			sync(t, r)
			tc.change(t, r.Dir())
			res, err := r.Publish(t.Context(), "ferry: render", nil)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(res.Files, " ") != strings.Join(tc.want, " ") {
				t.Errorf("committed %v, want %v", res.Files, tc.want)
			}
			out, err := exec.Command("git", "--git-dir", bare, "show", "--name-status", "--format=", "main").CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var pushed []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				pushed = append(pushed, strings.Fields(l)[1])
			}
			if strings.Join(pushed, " ") != strings.Join(tc.want, " ") {
				t.Errorf("the pushed commit changes %v, want %v", pushed, tc.want)
			}
		})
	}
}
