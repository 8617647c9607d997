package gitsync_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/gitsync/gogit"
	"github.com/ferry-gitops/ferry/internal/testenv"
)

// These tests run gitsync with its go-git backend against real git: git
// http-backend (and git-upload-pack / git-receive-pack behind SSH) from
// internal/testenv. What landed on the server is always checked with the
// git CLI on the bare repository, not with go-git.

func skipE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

// fleet is the config repo every test starts from: a spec and its render.
var fleet = map[string]string{
	"clusters/prod/catalog.yaml":          "kind: Catalog\nname: a\n",
	"clusters/prod/rendered/a/cs.yaml":    "image: a@sha256:1\n",
	"clusters/prod/rendered/ferry.lock":   "input: seed\n",
	"README.md":                           "fleet config\n",
	"clusters/staging/catalog.yaml":       "kind: Catalog\nname: s\n",
	"clusters/staging/rendered/s/cs.yaml": "image: s@sha256:1\n",
}

// setup starts a git server with the fleet repository and returns options
// for it (a fresh cache, quick retries).
func setup(t *testing.T) (*testenv.GitServer, gitsync.Options) {
	t.Helper()
	skipE2E(t)
	srv := testenv.StartGitServer(t, testenv.GitOptions{})
	url := srv.Seed("fleet", fleet)
	opts := gitsync.DefaultOptions(url, t.TempDir())
	opts.Path = "clusters/prod"
	opts.Credentials = &gitsync.Credentials{Username: srv.Username, Password: srv.Password}
	opts.Backoff = 1 // a nanosecond: retries are counted, not timed
	return srv, opts
}

func open(t *testing.T, opts gitsync.Options) *gitsync.Repo {
	t.Helper()
	r, err := gitsync.Open(t.Context(), gogit.New(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func sync(t *testing.T, r *gitsync.Repo) string {
	t.Helper()
	tip, err := r.Sync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return tip
}

func writeFile(t testing.TB, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// gitLog is `git log --format=%H %P %s` of branch in the bare repository.
func gitLog(t *testing.T, srv *testenv.GitServer, branch string) []string {
	t.Helper()
	out, err := srv.Git("", "--git-dir", srv.BareDir("fleet"), "log", "--format=%H %P|%s", branch)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(out), "\n")
}

// services counts the requests per git service since from.
func services(srv *testenv.GitServer, from int) (lsRefs, uploadPack, receivePack int) {
	for _, r := range srv.Requests()[from:] {
		switch {
		case r.Method == "GET" && strings.HasSuffix(r.Path, "/info/refs"):
			lsRefs++
		case r.Method == "POST" && r.Service == "git-upload-pack":
			uploadPack++
		case r.Method == "POST" && r.Service == "git-receive-pack":
			receivePack++
		}
	}
	return
}

// render is a stand-in for Ferry's pipeline: it derives the render from
// the spec in the work tree, so a test sees which spec it was given.
func render(t *testing.T, r *gitsync.Repo) gitsync.RenderFunc {
	return func(ctx context.Context, workTree string) (string, error) {
		spec := readFile(t, r.Dir(), "catalog.yaml")
		writeFile(t, r.Dir(), "rendered/a/cs.yaml", "rendered from: "+spec)
		return gitsync.AppendTrailers("ferry: render Catalog/a", gitsync.Trailer{Key: gitsync.SourceRevisionTrailer, Value: r.Revision()})
	}
}

func TestSyncClonesThenFetchesOnlyWhatIsNew(t *testing.T) {
	srv, opts := setup(t)
	r := open(t, opts)
	tip := sync(t, r)
	if want := srv.Rev("fleet", "main"); tip != want {
		t.Fatalf("Sync returned %s, server main is %s", tip, want)
	}
	if got := readFile(t, r.Dir(), "catalog.yaml"); got != fleet["clusters/prod/catalog.yaml"] {
		t.Fatalf("spec in the work tree: %q", got)
	}
	if _, err := os.Stat(filepath.Join(r.WorkTree(), ".git", "shallow")); err != nil {
		t.Errorf("the first clone is not shallow: %v", err)
	}
	// A file a failed run left behind, and a marker that survives only if
	// the clone is reused rather than made again.
	writeFile(t, r.Dir(), "rendered/leftover.yaml", "half a render\n")
	marker := filepath.Join(r.WorkTree(), ".git", "ferry-test-marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.Close()

	t.Run("idle: one ls-remote, no fetch", func(t *testing.T) {
		r := open(t, opts)
		before := len(srv.Requests())
		if got := sync(t, r); got != tip {
			t.Fatalf("Sync %s, want %s", got, tip)
		}
		if ls, up, rp := services(srv, before); ls != 1 || up != 0 || rp != 0 {
			t.Errorf("idle Sync made %d ref listings, %d fetches, %d pushes; want 1, 0, 0: %+v", ls, up, rp, srv.Requests()[before:])
		}
		if _, err := os.Stat(filepath.Join(r.Dir(), "rendered/leftover.yaml")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Sync kept a file the previous run left in the work tree (%v)", err)
		}
		before = len(srv.Requests())
		head, err := r.Head(t.Context())
		if err != nil || head != tip {
			t.Fatalf("Head = %s, %v; want %s", head, err, tip)
		}
		if n := len(srv.Requests()) - before; n != 1 {
			t.Errorf("Head made %d requests, want 1 (ls-remote)", n)
		}
		r.Close()
	})

	t.Run("moved: one fetch into the same clone", func(t *testing.T) {
		next := srv.Commit("fleet", "main", "widen a", map[string]string{"clusters/prod/catalog.yaml": "kind: Catalog\nname: a\nmax: 2\n"})
		r := open(t, opts)
		before := len(srv.Requests())
		if got := sync(t, r); got != next {
			t.Fatalf("Sync %s, want the new tip %s", got, next)
		}
		if ls, up, _ := services(srv, before); up != 1 || ls != 2 {
			t.Errorf("Sync after a push made %d ref listings and %d fetches, want 2 (ls-remote, fetch) and 1", ls, up)
		}
		if _, err := os.Stat(marker); err != nil {
			t.Errorf("the clone was made again (marker gone: %v)", err)
		}
		if !strings.Contains(readFile(t, r.Dir(), "catalog.yaml"), "max: 2") {
			t.Error("the work tree does not hold the new tip")
		}
	})
}

func TestPublish(t *testing.T) {
	srv, opts := setup(t)
	opts.Author = gitsync.Signature{Name: "Ferry Bot", Email: "ferry@corp.example.com"}
	opts.Committer = gitsync.Signature{Name: "Platform Team", Email: "platform@corp.example.com"}
	r := open(t, opts)
	base := sync(t, r)

	t.Run("unchanged render: no commit, no push", func(t *testing.T) {
		before := len(srv.Requests())
		res, err := r.Publish(t.Context(), "ferry: render", nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Commit != "" || srv.Rev("fleet", "main") != base {
			t.Fatalf("committed %q with nothing changed", res.Commit)
		}
		if _, _, rp := services(srv, before); rp != 0 {
			t.Errorf("%d pushes with nothing changed", rp)
		}
	})

	t.Run("changed render: one commit on top of the tip", func(t *testing.T) {
		writeFile(t, r.Dir(), "rendered/a/cs.yaml", "image: a@sha256:2\n")
		writeFile(t, r.Dir(), "catalog.yaml", "edited by the render step, must not be committed\n")
		msg, _ := gitsync.AppendTrailers("ferry: render Catalog/a", gitsync.Trailer{Key: gitsync.SourceRevisionTrailer, Value: base})
		res, err := r.Publish(t.Context(), msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		log := gitLog(t, srv, "main")
		if want := res.Commit + " " + base + "|ferry: render Catalog/a"; log[0] != want || len(log) != 2 {
			t.Fatalf("server main:\n%s\nwant on top: %s", strings.Join(log, "\n"), want)
		}
		if res.Files[0] != "clusters/prod/rendered/a/cs.yaml" || len(res.Files) != 1 {
			t.Errorf("committed %v, want the render file only", res.Files)
		}
		body, _ := srv.Git("", "--git-dir", srv.BareDir("fleet"), "log", "-1", "--format=%an <%ae>|%cn <%ce>|%(trailers:key=Ferry-Source-Revision,valueonly)", "main")
		if want := "Ferry Bot <ferry@corp.example.com>|Platform Team <platform@corp.example.com>|" + base; strings.TrimSpace(body) != want {
			t.Errorf("commit signature and trailer %q, want %q", strings.TrimSpace(body), want)
		}
	})
}

func TestPublishAfterAForeignPush(t *testing.T) {
	srv, opts := setup(t)
	r := open(t, opts)
	sync(t, r)
	rerender := render(t, r)
	msg, err := rerender(t.Context(), r.WorkTree())
	if err != nil {
		t.Fatal(err)
	}
	// Someone changes the spec between Ferry's fetch and its push.
	foreign := srv.Commit("fleet", "main", "widen a", map[string]string{"clusters/prod/catalog.yaml": "kind: Catalog\nname: a\nmax: 2\n"})
	var seen []string
	res, err := r.Publish(t.Context(), msg, func(ctx context.Context, wt string) (string, error) {
		seen = append(seen, r.Revision())
		return rerender(ctx, wt)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != foreign {
		t.Fatalf("re-render called on %v, want once on the foreign tip %s", seen, foreign)
	}
	if res.Attempts != 2 || res.Base != foreign {
		t.Errorf("Published %+v, want 2 attempts based on %s", res, foreign)
	}
	log := gitLog(t, srv, "main")
	if len(log) != 3 || log[0] != res.Commit+" "+foreign+"|ferry: render Catalog/a" || !strings.HasPrefix(log[1], foreign+" ") {
		t.Fatalf("server main, want Ferry's commit on the foreign one on the seed:\n%s", strings.Join(log, "\n"))
	}
	show, _ := srv.Git("", "--git-dir", srv.BareDir("fleet"), "show", "main:clusters/prod/rendered/a/cs.yaml")
	if !strings.Contains(show, "max: 2") {
		t.Errorf("the pushed render was not made from the new tip's spec: %q", show)
	}
}

func TestPublishStopsWhenTheNewTipCannotBeRendered(t *testing.T) {
	srv, opts := setup(t)
	r := open(t, opts)
	sync(t, r)
	writeFile(t, r.Dir(), "rendered/a/cs.yaml", "image: a@sha256:2\n")
	foreign := srv.Commit("fleet", "main", "break the spec", map[string]string{"clusters/prod/catalog.yaml": "kind: Catalog\nunknownField: 1\n"})
	before := len(srv.Requests())
	invalid := errors.New("catalog.yaml:2: Catalog/a: unknownField: unknown field")
	_, err := r.Publish(t.Context(), "ferry: render", func(context.Context, string) (string, error) { return "", invalid })
	var re *gitsync.RerenderError
	if !errors.As(err, &re) || !errors.Is(err, invalid) || re.Revision != foreign {
		t.Fatalf("err %v, want a RerenderError on %s wrapping the callback's error", err, foreign)
	}
	if got := srv.Rev("fleet", "main"); got != foreign {
		t.Errorf("server main %s, want it untouched at %s", got, foreign)
	}
	for _, req := range srv.Requests()[before:] {
		if req.Method == "POST" && req.Service == "git-receive-pack" {
			t.Errorf("a pack was sent to the server: %+v", req)
		}
	}
}

func TestPublishGivesUpAfterPushAttempts(t *testing.T) {
	srv, opts := setup(t)
	opts.PushAttempts = 3
	r := open(t, opts)
	sync(t, r)
	writeFile(t, r.Dir(), "rendered/a/cs.yaml", "image: a@sha256:2\n")
	n := 0
	busy := func(ctx context.Context, wt string) (string, error) {
		// Another writer wins every race.
		n++
		srv.Commit("fleet", "main", "busy", map[string]string{"README.md": strings.Repeat("x", n)})
		return render(t, r)(ctx, wt)
	}
	srv.Commit("fleet", "main", "busy", map[string]string{"README.md": "first"})
	_, err := r.Publish(t.Context(), "ferry: render", busy)
	if !errors.Is(err, gitsync.ErrNonFastForward) || !strings.Contains(err.Error(), "3 push attempts") {
		t.Fatalf("err %v, want ErrNonFastForward after 3 attempts", err)
	}
	if n != 2 {
		t.Errorf("re-rendered %d times, want 2 (between 3 attempts)", n)
	}
	for _, l := range gitLog(t, srv, "main") {
		if strings.Contains(l, "ferry: render") {
			t.Errorf("a Ferry commit landed although every push lost: %s", l)
		}
	}
}

func TestPushRefusedByTheServer(t *testing.T) {
	t.Run("the branch moved during the push: retried", func(t *testing.T) {
		srv, opts := setup(t)
		r := open(t, opts)
		base := sync(t, r)
		writeFile(t, r.Dir(), "rendered/a/cs.yaml", "image: a@sha256:2\n")
		// Another writer lands while receive-pack holds our pack, after
		// every client-side check: only the server can see it. Once.
		foreign := srv.Commit("fleet", "main", "raced", map[string]string{"README.md": "raced\n"})
		bare := srv.BareDir("fleet")
		for _, args := range [][]string{{"update-ref", "refs/heads/side", foreign}, {"update-ref", "refs/heads/main", base}} {
			if _, err := srv.Git("", append([]string{"--git-dir", bare}, args...)...); err != nil {
				t.Fatal(err)
			}
		}
		srv.Hook("fleet", "pre-receive", `
if [ ! -e raced ]; then touch raced; env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main `+foreign+`; fi
exit 0
`)
		rendered := 0
		res, err := r.Publish(t.Context(), "ferry: render", func(ctx context.Context, wt string) (string, error) {
			rendered++
			return render(t, r)(ctx, wt)
		})
		if err != nil {
			t.Fatal(err)
		}
		if rendered != 1 || res.Attempts != 2 || res.Base != foreign {
			t.Errorf("rendered %d times, %+v; want one re-render on %s", rendered, res, foreign)
		}
		if log := gitLog(t, srv, "main"); !strings.HasPrefix(log[0], res.Commit+" "+foreign) {
			t.Errorf("server main:\n%s", strings.Join(log, "\n"))
		}
	})
	t.Run("a hook declines: reported, not retried", func(t *testing.T) {
		srv, opts := setup(t)
		r := open(t, opts)
		base := sync(t, r)
		writeFile(t, r.Dir(), "rendered/a/cs.yaml", "image: a@sha256:2\n")
		srv.Hook("fleet", "pre-receive", "echo protected branch >&2; exit 1\n")
		_, err := r.Publish(t.Context(), "ferry: render", func(context.Context, string) (string, error) {
			t.Error("re-render called for a push a hook refused")
			return "", nil
		})
		var pr *gitsync.PushRejectedError
		if !errors.As(err, &pr) || errors.Is(err, gitsync.ErrNonFastForward) {
			t.Fatalf("err %v, want a PushRejectedError that is not ErrNonFastForward", err)
		}
		if srv.Rev("fleet", "main") != base {
			t.Error("main moved")
		}
	})
}

func TestReadOnly(t *testing.T) {
	srv, opts := setup(t)
	opts.ReadOnly = true
	r := open(t, opts)
	base := sync(t, r)
	writeFile(t, r.Dir(), "rendered/a/cs.yaml", "image: a@sha256:2\n")
	before := len(srv.Requests())
	if _, err := r.Publish(t.Context(), "ferry: render", render(t, r)); !errors.Is(err, gitsync.ErrReadOnly) {
		t.Fatalf("Publish on a read-only Repo: %v, want ErrReadOnly", err)
	}
	if n := len(srv.Requests()) - before; n != 0 || srv.Rev("fleet", "main") != base {
		t.Errorf("%d requests after a refused write; main %s (want %s)", n, srv.Rev("fleet", "main"), base)
	}
}

func TestPushBranch(t *testing.T) {
	srv, opts := setup(t)
	opts.PushBranch = "ferry/render"
	publish := func(t *testing.T) *gitsync.Published {
		t.Helper()
		r := open(t, opts)
		sync(t, r)
		msg, err := render(t, r)(t.Context(), r.WorkTree())
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Publish(t.Context(), msg, render(t, r))
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		return res
	}
	main0 := srv.Rev("fleet", "main")

	first := publish(t)
	if first.Branch != "ferry/render" || srv.Rev("fleet", "ferry/render") != first.Commit {
		t.Fatalf("Published %+v; server push branch at %s", first, srv.Rev("fleet", "ferry/render"))
	}
	if log := gitLog(t, srv, "ferry/render"); !strings.HasPrefix(log[0], first.Commit+" "+main0+"|") {
		t.Errorf("push branch is not one commit on main:\n%s", strings.Join(log, "\n"))
	}
	if srv.Rev("fleet", "main") != main0 {
		t.Error("main moved: the push went to the wrong branch")
	}

	if again := publish(t); again.Commit != "" {
		t.Errorf("a second run with nothing new committed %s", again.Commit)
	}

	// main moves on (a reviewer merged something else): the next render is a
	// merge of the push branch and the new tip, a fast-forward for the
	// push branch that contains main.
	main1 := srv.Commit("fleet", "main", "widen a", map[string]string{"clusters/prod/catalog.yaml": "kind: Catalog\nname: a\nmax: 2\n"})
	third := publish(t)
	if log := gitLog(t, srv, "ferry/render"); !strings.HasPrefix(log[0], third.Commit+" "+first.Commit+" "+main1+"|") {
		t.Fatalf("push branch after main moved, want a merge of %s and %s:\n%s", first.Commit, main1, strings.Join(log, "\n"))
	}
	diff, _ := srv.Git("", "--git-dir", srv.BareDir("fleet"), "diff", "--name-only", "main", "ferry/render")
	if strings.TrimSpace(diff) != "clusters/prod/rendered/a/cs.yaml" {
		t.Errorf("push branch differs from main in %q, want the render only", diff)
	}
}

func TestChangedOutside(t *testing.T) {
	srv, opts := setup(t)
	r := open(t, opts)
	base := sync(t, r)
	writeFile(t, r.Dir(), "rendered/a/cs.yaml", "image: a@sha256:2\n")
	own, err := r.Publish(t.Context(), "ferry: render", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon compares the tips it saw on consecutive polls; a shallow
	// clone holds exactly those.
	renderOnly := srv.Commit("fleet", "main", "hand edit of the render", map[string]string{"clusters/prod/rendered/b.yaml": "b\n"})
	sync(t, r)
	spec := srv.Commit("fleet", "main", "spec", map[string]string{"clusters/prod/catalog.yaml": "kind: Catalog\nname: a\nmax: 3\n"})
	sync(t, r)
	srv.Commit("fleet", "main", "not fetched", map[string]string{"clusters/staging/catalog.yaml": "y\n"})
	elsewhere := srv.Commit("fleet", "main", "other cluster", map[string]string{"clusters/staging/catalog.yaml": "x\n"})
	sync(t, r)
	for _, tc := range []struct {
		name     string
		old, new string
		want     bool
	}{
		{"Ferry's own commit", base, own.Commit, false},
		{"a render-only edit", own.Commit, renderOnly, false},
		{"both together", base, renderOnly, false},
		{"the spec changed", renderOnly, spec, true},
		{"another directory changed, two commits at once", spec, elsewhere, true},
		{"the same revision", spec, spec, false},
		{"an old revision the clone never had", strings.Repeat("ab", 20), spec, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.ChangedOutside(t.Context(), tc.old, tc.new, r.RenderPath())
			if err != nil || got != tc.want {
				t.Errorf("ChangedOutside(%s, %s, %s) = %v, %v; want %v", tc.old[:7], tc.new[:7], r.RenderPath(), got, err, tc.want)
			}
		})
	}
}

func TestCredentialsStayOutOfDiskCommitsAndErrors(t *testing.T) {
	skipE2E(t)
	srv := testenv.StartGitServer(t, testenv.GitOptions{})
	srv.Seed("fleet", fleet)
	withUser := strings.Replace(srv.RepoURL("fleet"), "://", "://"+srv.Username+":"+srv.Password+"@", 1)
	cache := t.TempDir()
	opts := gitsync.DefaultOptions(withUser, cache)
	opts.Path = "clusters/prod"
	var logged bytes.Buffer
	opts.Log = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := open(t, opts)
	sync(t, r)
	writeFile(t, r.Dir(), "rendered/a/cs.yaml", "image: a@sha256:2\n")
	if _, err := r.Publish(t.Context(), "ferry: render", nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.URL(), srv.Password) {
		t.Errorf("URL() = %s", r.URL())
	}

	// Every byte Ferry left on disk, and everything the server stored.
	for _, root := range []string{cache, srv.BareDir("fleet")} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err == nil && bytes.Contains(b, []byte(srv.Password)) {
				t.Errorf("%s holds the password", p)
			}
			return nil
		})
	}
	if !strings.Contains(logged.String(), "git push") || strings.Contains(logged.String(), srv.Password) {
		t.Errorf("log, want a push line and no password:\n%s", logged.String())
	}
	cfg := readFile(t, r.WorkTree(), ".git/config")
	if !strings.Contains(cfg, srv.RepoURL("fleet")) || strings.Contains(cfg, "@") {
		t.Errorf(".git/config does not name the clean URL:\n%s", cfg)
	}
	out, _ := srv.Git("", "--git-dir", srv.BareDir("fleet"), "log", "-p", "--all")
	if strings.Contains(out, srv.Password) {
		t.Error("a commit holds the password")
	}

	t.Run("a wrong password is refused, and the error does not quote it", func(t *testing.T) {
		wrong := "wrong-" + srv.Password
		o := gitsync.DefaultOptions(strings.Replace(srv.RepoURL("fleet"), "://", "://"+srv.Username+":"+wrong+"@", 1), t.TempDir())
		r := open(t, o)
		_, err := r.Sync(t.Context())
		if !errors.Is(err, gitsync.ErrAuthentication) {
			t.Fatalf("err %v, want ErrAuthentication", err)
		}
		for _, text := range []string{err.Error(), fmtAll(err)} {
			if strings.Contains(text, wrong) || strings.Contains(text, srv.Password) {
				t.Errorf("error text holds the password: %s", text)
			}
		}
		if !strings.Contains(err.Error(), srv.RepoURL("fleet")) {
			t.Errorf("error %q does not name the repository", err)
		}
	})
}

// fmtAll prints err and everything it wraps.
func fmtAll(err error) string {
	var b strings.Builder
	for e := err; e != nil; e = errors.Unwrap(e) {
		b.WriteString(e.Error() + "\n")
	}
	return b.String()
}
