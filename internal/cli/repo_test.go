package cli

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
)

func skipE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

// TestRepoFlagsUsage: the repository flags are refused where they cannot
// work, before anything is read or fetched.
func TestRepoFlagsUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"DIR and --repo", []string{"validate", dir, "--repo", "https://git.example.com/fleet.git"}, "give either DIR"},
		{"DIR and --repo on run", []string{"run", dir, "--repo", "https://git.example.com/fleet.git"}, "give either DIR"},
		{"--branch without --repo", []string{"diff", dir, "--branch", "prod"}, "--branch needs --repo"},
		{"--git-password-file without --repo", []string{"reconcile", dir, "--git-password-file", "/dev/null"}, "--git-password-file needs --repo"},
		{"--commit=false with --repo", []string{"reconcile", "--repo", "https://git.example.com/fleet.git", "--commit=false", "--cache-dir", dir}, "--commit=false with --repo"},
		{"bad author", []string{"reconcile", "--repo", "https://git.example.com/fleet.git", "--git-author", "ferry", "--cache-dir", dir}, `--git-author "ferry": want "Name <email>"`},
		{"bad branch name", []string{"diff", "--repo", "https://git.example.com/fleet.git", "--branch", "-x", "--cache-dir", dir}, "is not a branch name"},
		{"a password in the URL stays out of the error", []string{"validate", "--repo", "https://ferry:hunter2-secret@git.example.com/fleet.git", "--path", "../x", "--cache-dir", dir}, "--path"},
		{"unreadable password file", []string{"validate", "--repo", "https://git.example.com/fleet.git", "--git-password-file", filepath.Join(dir, "missing"), "--cache-dir", dir}, "--git-password-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := run(t, tc.args...)
			if code != ExitInvalid || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, ExitInvalid, tc.stderr, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, "hunter2-secret") {
				t.Error("the URL's password was printed")
			}
		})
	}
}

func TestParseSignature(t *testing.T) {
	for _, tc := range []struct {
		in, name, email string
		ok              bool
	}{
		{"Ferry <ferry@localhost>", "Ferry", "ferry@localhost", true},
		{"Fleet CI Bot <ci@fleet.example>", "Fleet CI Bot", "ci@fleet.example", true},
		{`"Doe, Jane" <jane@example.com>`, "Doe, Jane", "jane@example.com", true},
		{"ferry@localhost", "", "", false},
		{"Ferry", "", "", false},
		{"Ferry <ferry@localhost>\nX: y", "", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			sig, err := parseSignature("--git-author", tc.in)
			if (err == nil) != tc.ok || sig.Name != tc.name || sig.Email != tc.email {
				t.Errorf("parseSignature(%q) = %+v, %v", tc.in, sig, err)
			}
		})
	}
}

// repoEnv is a config repository on a real git server (git http-backend
// with basic auth) whose spec mirrors real community packages from a real
// source registry into an authenticated mirror.
type repoEnv struct {
	git       *testenv.GitServer
	src, dst  *testenv.Registry
	w         *world.World
	auth      string // -a file: the mirror's planted password
	passFile  string // --git-password-file: the git server's planted password
	cache     string
	url       string
	leaks     []string // output that must not hold a password
	receives0 int
}

const specPath = "clusters/prod/catalog.yaml"

func newRepoEnv(t *testing.T, packages ...string) *repoEnv {
	t.Helper()
	e := &repoEnv{}
	e.src = testenv.StartRegistry(t, testenv.RegistryOptions{})
	e.dst = testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	e.auth = testenv.AuthFile(t, e.dst)
	all, err := world.OpenCatalogArchive(filepath.Join(testenv.RepoRoot(t), "testdata/fbc/large/community-operators-prod-catalogs-v4.20.tar.gz"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sub := t.TempDir()
	for _, p := range packages {
		data, err := fs.ReadFile(all, p+"/catalog.yaml")
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(sub, p), 0o755)
		os.WriteFile(filepath.Join(sub, p, "catalog.yaml"), data, 0o644)
	}
	opts := world.DefaultOptions(e.src.Host)
	opts.CatalogRepository = "redhat/community-operator-index"
	opts.CatalogTag = "v4.20"
	if e.w, err = world.Build(t.Context(), os.DirFS(sub), opts); err != nil {
		t.Fatal(err)
	}
	e.git = testenv.StartGitServer(t, testenv.GitOptions{})
	e.url = e.git.Seed("fleet", map[string]string{
		specPath:    e.spec("Community", packages[0]),
		"README.md": "fleet configuration\n",
	})
	e.passFile = filepath.Join(t.TempDir(), "git-password")
	if err := os.WriteFile(e.passFile, []byte(e.git.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cache = t.TempDir()
	return e
}

// spec is the config repo's catalog.yaml.
func (e *repoEnv) spec(display string, packages ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: ferry.dev/v1alpha1
kind: Mirror
metadata:
  name: lab
spec:
  registry: %s/ocp
---
apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community
spec:
  source: %s
  catalogSource:
    displayName: %s
  packages:
`, e.dst.Host, e.w.CatalogTag, display)
	for _, p := range packages {
		fmt.Fprintf(&b, "    - name: %s\n", p)
	}
	return b.String()
}

// ferry runs a command against the repository with the git password from
// a file (withURL: planted in the URL's user info instead).
func (e *repoEnv) ferry(t *testing.T, withURL bool, args ...string) (string, string, int) {
	t.Helper()
	repo := []string{"--repo", e.url, "--git-username", e.git.Username, "--git-password-file", e.passFile}
	if withURL {
		repo = []string{"--repo", strings.Replace(e.url, "://", "://"+e.git.Username+":"+e.git.Password+"@", 1)}
	}
	args = append(args, append(repo, "--path", "clusters/prod", "--cache-dir", e.cache)...)
	switch args[0] {
	case "reconcile":
		args = append(args, "-a", e.auth, "--progress", "never")
	case "diff", "render":
		args = append(args, "-a", e.auth)
	}
	stdout, stderr, code := run(t, args...)
	e.leaks = append(e.leaks, stdout, stderr)
	return stdout, stderr, code
}

// bare runs the git CLI on the server's repository.
func (e *repoEnv) bare(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.git.Git("", append([]string{"--git-dir", e.git.BareDir("fleet")}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// pushes counts the requests of the push protocol (git-receive-pack: its
// ref advertisement, then the POST of each pack sent) since the last call.
func (e *repoEnv) pushes() (requests, packs int) {
	reqs := e.git.Requests()
	for _, r := range reqs[e.receives0:] {
		if r.Service == "git-receive-pack" {
			requests++
			if r.Method == "POST" {
				packs++
			}
		}
	}
	e.receives0 = len(reqs)
	return requests, packs
}

// race makes the next push over HTTP lose a race: the commit another
// writer made (next, on top of the current tip) lands on main while
// receive-pack holds Ferry's pack, after every client-side check, once.
func (e *repoEnv) race(t *testing.T, marker, message string, files map[string]string) string {
	t.Helper()
	base := e.git.Rev("fleet", "main")
	next := e.git.Commit("fleet", "main", message, files)
	e.bare(t, "update-ref", "refs/heads/"+marker, next)
	e.bare(t, "update-ref", "refs/heads/main", base)
	e.git.Hook("fleet", "pre-receive", `
if [ ! -e `+marker+` ]; then touch `+marker+`; env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main `+next+`; fi
exit 0
`)
	return next
}

// verifyMirror checks every image the committed mapping.txt names is in
// the mirror under its source digest, and returns how many there are.
func (e *repoEnv) verifyMirror(t *testing.T) int {
	t.Helper()
	mapping := e.bare(t, "show", "main:clusters/prod/rendered/mirror/mapping.txt")
	lines := strings.Split(mapping, "\n")
	for _, l := range lines {
		srcRef, dstRef, _ := strings.Cut(l, "=")
		_, digest, _ := strings.Cut(srcRef, "@")
		ref, err := name.ParseReference(dstRef)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(ref, remote.WithAuth(e.dst.Auth()))
		if err != nil || desc.Digest.String() != digest {
			t.Errorf("%s: %v %v, want %s", dstRef, desc, err, digest)
		}
	}
	return len(lines)
}

// TestReconcileRepo runs `ferry reconcile --repo` against real git (git
// http-backend, checked with the git CLI on the bare repository) and real
// registries: the first run mirrors and pushes one commit touching only the
// render directory, signed as configured, with the spec commit as trailer;
// a second run pushes nothing and writes nothing to the mirror; diff and
// --dry-run never push; a spec change pushed by someone else between
// Ferry's fetch and its push is fetched and re-planned, both commits
// survive and the render follows the new spec; a foreign commit that makes
// the spec invalid stops the run with exit 2 and the remote as the other
// writer left it; the planted passwords appear nowhere.
func TestReconcileRepo(t *testing.T) {
	skipE2E(t)
	e := newRepoEnv(t, "kubevirt-wol", "nfs-provisioner-operator")
	seed := e.git.Rev("fleet", "main")
	sign := []string{"--git-author", "Ferry Bot <ferry-bot@fleet.example>", "--git-committer", "Fleet CI <ci@fleet.example>"}

	// validate --repo reads the tip and writes nothing anywhere.
	if stdout, stderr, code := e.ferry(t, false, "validate"); code != 0 || !strings.Contains(stdout, "fleet.git main clusters/prod: valid: 1 file(s), 1 Catalog(s), 1 Mirror") {
		t.Fatalf("validate --repo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// render --repo writes only OUTDIR.
	out := t.TempDir()
	if stdout, stderr, code := e.ferry(t, false, "render", "-o", out); code != 0 || !strings.Contains(stdout, "Wrote ") {
		t.Errorf("render --repo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "catalogs/community/catalogsource.yaml")); err != nil {
		t.Errorf("render --repo -o: %v", err)
	}
	// diff --repo before anything is rendered: changes pending, no push.
	if stdout, stderr, code := e.ferry(t, false, "diff"); code != 1 || !strings.Contains(stdout, "kubevirt-wol") {
		t.Errorf("diff --repo before the first reconcile: exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	if n, _ := e.pushes(); n != 0 || e.git.Rev("fleet", "main") != seed {
		t.Errorf("validate, render and diff --repo sent %d push request(s)", n)
	}

	// 1. The first reconcile: mirrored, rendered, one commit pushed.
	stdout, stderr, code := e.ferry(t, true, append([]string{"reconcile"}, sign...)...)
	if code != 0 {
		t.Fatalf("reconcile --repo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	first := e.git.Rev("fleet", "main")
	if !strings.Contains(stdout, "Render: pushed ") || !strings.Contains(stdout, first[:12]) {
		t.Errorf("reconcile --repo output does not say what it pushed:\n%s", stdout)
	}
	log := e.bare(t, "log", "--format=%H %P|%an <%ae>|%cn <%ce>|%(trailers:key=Ferry-Source-Revision,valueonly,separator=)|%s", "main")
	want := first + " " + seed + "|Ferry Bot <ferry-bot@fleet.example>|Fleet CI <ci@fleet.example>|" + seed + "|ferry: reconcile community"
	if lines := strings.Split(log, "\n"); len(lines) != 2 || lines[0] != want {
		t.Errorf("server main after the first reconcile:\n%s\nwant on top:\n%s", log, want)
	}
	for _, f := range strings.Split(e.bare(t, "diff-tree", "--no-commit-id", "--name-only", "-r", "main"), "\n") {
		if !strings.HasPrefix(f, "clusters/prod/rendered/") {
			t.Errorf("Ferry's commit touches %s, outside the render directory", f)
		}
	}
	images := e.verifyMirror(t)

	// 2. Nothing changed: nothing pushed, nothing written to the mirror.
	e.pushes()
	off := e.dst.LogSize(t)
	stdout, stderr, code = e.ferry(t, false, "reconcile")
	if code != 0 || !strings.Contains(stdout, "unchanged") {
		t.Fatalf("second reconcile --repo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n, _ := e.pushes(); n != 0 || e.git.Rev("fleet", "main") != first {
		t.Errorf("a reconcile with nothing to do sent %d push request(s); main %s, was %s", n, e.git.Rev("fleet", "main"), first)
	}
	if counts, lines := e.dst.Requests(t, off); testenv.Writes(counts) != 0 {
		t.Errorf("a reconcile with nothing to do wrote to the mirror: %v", lines)
	}

	// 3. Someone adds a package: diff and --dry-run show it, push nothing,
	// write nothing to the mirror.
	added := e.git.Commit("fleet", "main", "add nfs-provisioner-operator", map[string]string{specPath: e.spec("Community", "kubevirt-wol", "nfs-provisioner-operator")})
	e.pushes()
	off = e.dst.LogSize(t)
	if stdout, stderr, code := e.ferry(t, false, "diff"); code != 1 || !strings.Contains(stdout, "nfs-provisioner-operator") {
		t.Errorf("diff --repo after a spec change: exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	if stdout, stderr, code := e.ferry(t, false, "reconcile", "--dry-run"); code != 0 || !strings.Contains(stdout, "nfs-provisioner-operator") {
		t.Errorf("reconcile --dry-run --repo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n, _ := e.pushes(); n != 0 || e.git.Rev("fleet", "main") != added {
		t.Errorf("diff and --dry-run sent %d push request(s)", n)
	}
	if counts, lines := e.dst.Requests(t, off); testenv.Writes(counts) != 0 {
		t.Errorf("diff and --dry-run wrote to the mirror: %v", lines)
	}

	// 4. While Ferry pushes the render of `added`, someone pushes a spec
	// change on top (the display name): the push is rejected, Ferry
	// fetches, plans and renders again on the new tip and pushes on top.
	renamed := e.race(t, "raced-rename", "rename the catalog", map[string]string{specPath: e.spec("Community (mirrored)", "kubevirt-wol", "nfs-provisioner-operator")})
	stdout, stderr, code = e.ferry(t, true, append([]string{"reconcile"}, sign...)...)
	if code != 0 {
		t.Fatalf("reconcile --repo losing a push race: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "Push rejected") || !strings.Contains(stdout, "after 2 push attempts") {
		t.Errorf("the retry is not reported:\n%s", stdout)
	}
	top := e.git.Rev("fleet", "main")
	log = e.bare(t, "log", "--format=%H %P|%(trailers:key=Ferry-Source-Revision,valueonly,separator=)", "main")
	lines := strings.Split(log, "\n")
	if len(lines) != 5 || lines[0] != top+" "+renamed+"|"+renamed || !strings.HasPrefix(lines[1], renamed+" "+added) || !strings.HasPrefix(lines[2], added+" "+first) {
		t.Errorf("server main: want Ferry's commit (trailer: the foreign tip) on the foreign commit on the spec change on Ferry's first:\n%s", log)
	}
	if _, err := e.git.Git("", "--git-dir", e.git.BareDir("fleet"), "merge-base", "--is-ancestor", renamed, "main"); err != nil {
		t.Error("the foreign commit is not in main's history: overwritten")
	}
	cs := e.bare(t, "show", "main:clusters/prod/rendered/catalogs/community/catalogsource.yaml")
	if !strings.Contains(cs, "displayName: Community (mirrored)") {
		t.Errorf("the render was not made from the new tip's spec:\n%s", cs)
	}
	if _, err := e.git.Git("", "--git-dir", e.git.BareDir("fleet"), "cat-file", "-e", "main:clusters/prod/rendered/catalogs/community/configs/nfs-provisioner-operator/catalog.yaml"); err != nil {
		t.Error("the added package is not rendered")
	}
	if more := e.verifyMirror(t); more <= images {
		t.Errorf("%d images mirrored after adding a package, %d before", more, images)
	}

	// 5. The foreign commit of the race makes the spec invalid: Ferry
	// stops with exit 2 and leaves the remote as the other writer left it.
	e.git.Commit("fleet", "main", "narrow to kubevirt-wol", map[string]string{specPath: e.spec("Community (mirrored)", "kubevirt-wol")})
	broken := e.race(t, "raced-invalid", "typo", map[string]string{specPath: strings.Replace(e.spec("Community (mirrored)", "kubevirt-wol"), "  packages:", "  packagez:", 1)})
	e.pushes()
	stdout, stderr, code = e.ferry(t, false, "reconcile")
	if code != ExitInvalid {
		t.Fatalf("reconcile --repo on a foreign invalid spec: exit %d, want %d\n%s\n%s", code, ExitInvalid, stdout, stderr)
	}
	if !strings.Contains(stderr, "clusters/prod/catalog.yaml:") || !strings.Contains(stderr, `unknown field "packagez"`) || !strings.Contains(stderr, "nothing was pushed") {
		t.Errorf("the invalid tip is not reported with its file and line:\n%s", stderr)
	}
	if got := e.git.Rev("fleet", "main"); got != broken {
		t.Errorf("main is %s, want the other writer's %s untouched", got, broken)
	}
	if _, packs := e.pushes(); packs != 1 {
		t.Errorf("%d pack(s) pushed, want only the rejected one", packs)
	}

	// Nothing holds a planted password: output, every file of the cache
	// (the clone's .git/config included), the server's history.
	e.leaks = append(e.leaks, e.bare(t, "log", "-p", "--all"))
	filepath.WalkDir(e.cache, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			e.leaks = append(e.leaks, p+"\n"+string(b))
		}
		return nil
	})
	for _, s := range e.leaks {
		for _, secret := range []string{e.git.Password, e.dst.Password} {
			if strings.Contains(s, secret) {
				t.Errorf("a planted password leaked into:\n%.300s", s)
			}
		}
	}
}

// TestRunRepoCommand runs `ferry run --repo` through the command line, as
// a user or the Deployment starts it, until its render commit is on the
// server, then reads its status with `ferry status --repo` and stops it.
func TestRunRepoCommand(t *testing.T) {
	skipE2E(t)
	e := newRepoEnv(t, "kubevirt-wol")
	seed := e.git.Rev("fleet", "main")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		root := NewRoot()
		root.SetArgs([]string{"run", "--repo", e.url, "--git-username", e.git.Username, "--git-password-file", e.passFile,
			"--path", "clusters/prod", "-a", e.auth, "--cache-dir", e.cache, "--interval", "50ms",
			"--health-addr", "", "--metrics-addr", "", "--git-author", "Ferry Daemon <daemon@fleet.example>"})
		root.SetOut(&out)
		root.SetErr(&errOut)
		done <- ExitCode(root.ExecuteContext(ctx), &errOut)
	}()
	// Only a hang fails on time: the daemon pushes as soon as it has
	// reconciled.
	for deadline := time.Now().Add(3 * time.Minute); e.git.Rev("fleet", "main") == seed; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("ferry run --repo pushed nothing within 3 minutes:\n%s", errOut.String())
		}
		select {
		case code := <-done:
			t.Fatalf("ferry run --repo exited %d:\n%s", code, errOut.String())
		default:
		}
	}
	if got := e.bare(t, "log", "-1", "--format=%an <%ae>|%(trailers:key=Ferry-Source-Revision,valueonly,separator=)", "main"); got != "Ferry Daemon <daemon@fleet.example>|"+seed {
		t.Errorf("the daemon's commit: %s", got)
	}
	// The status is written after the push: wait for it to say Ready.
	var stdout string
	for deadline := time.Now().Add(time.Minute); !strings.Contains(stdout, "Ready        True"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("ferry status --repo never showed Ready:\n%s", stdout)
		}
		stdout, _, _ = run(t, "status", "--repo", e.url, "--cache-dir", e.cache)
	}
	if !strings.Contains(stdout, "fleet.git main clusters/prod") {
		t.Errorf("ferry status --repo does not name the repository:\n%s", stdout)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("ferry run --repo stopped with exit %d:\n%s", code, errOut.String())
	}
	for _, s := range []string{out.String(), errOut.String(), stdout} {
		if strings.Contains(s, e.git.Password) || strings.Contains(s, e.dst.Password) {
			t.Error("a planted password was printed")
		}
	}
}

// syncBuffer is an output the command writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
