package daemon_test

import (
	"crypto/rand"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/internal/daemon"
	"github.com/ferry-gitops/ferry/internal/daemon/gitsource"
	"github.com/ferry-gitops/ferry/internal/daemon/webhook"
	"github.com/ferry-gitops/ferry/internal/logging"
	"github.com/ferry-gitops/ferry/internal/pipeline"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/spec"
)

// gitCounts are the requests a git server answered, by kind.
type gitCounts struct{ lsRefs, fetches, pushes int }

func countGit(reqs []testenv.GitRequest) gitCounts {
	var c gitCounts
	for _, r := range reqs {
		switch {
		case r.Service == "git-receive-pack":
			c.pushes++
		case r.Method == "GET" && strings.HasSuffix(r.Path, "/info/refs"):
			c.lsRefs++
		case r.Method == "POST" && r.Service == "git-upload-pack":
			c.fetches++
		}
	}
	return c
}

// TestRunRepo runs the daemon on a config repository served by real git
// (git http-backend with basic auth, checked with the git CLI on the bare
// repository) against real registries, as ferry run --repo wires it: the
// first reconcile pushes the render back; an idle poll costs one ref
// listing and no registry request; a badly signed webhook is refused; a
// spec change delivered by a signed webhook converges and its render is
// pushed; three idle polls then commit nothing and send nothing to the
// registries; a commit that changes only the render directory is not new
// desired state; a spec change pushed while the daemon pushes is
// re-planned on the new tip; the planted passwords appear nowhere.
func TestRunRepo(t *testing.T) {
	skipE2E(t)
	t.Parallel()
	f := newFixture(t, "kubevirt-wol", "nfs-provisioner-operator")
	srv := testenv.StartGitServer(t, testenv.GitOptions{})
	const specFile = "clusters/prod/catalog.yaml"
	url := srv.Seed("fleet", map[string]string{specFile: f.spec("kubevirt-wol"), "README.md": "fleet\n"})
	seed := srv.Rev("fleet", "main")
	bare := func(args ...string) string {
		t.Helper()
		out, err := srv.Git("", append([]string{"--git-dir", srv.BareDir("fleet")}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	// The git password is planted in the URL: every URL Ferry prints must
	// be redacted.
	cache := t.TempDir()
	gitLog := &syncBuffer{}
	repo, err := pipeline.OpenRepo(t.Context(), pipeline.RepoSettings{
		URL:       strings.Replace(url, "://", "://"+srv.Username+":"+srv.Password+"@", 1),
		Path:      "clusters/prod",
		RenderDir: spec.DefaultRenderDir,
		CacheDir:  cache,
		Author:    gitsync.Signature{Name: "Ferry Bot", Email: "ferry-bot@fleet.example"},
		Log:       logging.New(gitLog, logging.JSON, slog.LevelDebug),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	secret := []byte("hook-" + rand.Text())
	// Each cycle's git and registry request counts, taken in the loop
	// right after the cycle: exact, whatever the loop does next.
	type mark struct {
		git      gitCounts
		src, dst int64
	}
	marks := make(chan mark, 1000)
	onCycle := func(daemon.Cycle) {
		marks <- mark{countGit(srv.Requests()), f.src.LogSize(t), f.dst.LogSize(t)}
	}
	r := startDaemon(t, f, "", daemonConfig{
		source: gitsource.New(repo), secret: secret,
		opts: daemon.Options{PublishRetries: 3, Backoff: daemon.Backoff{Initial: time.Millisecond, Max: time.Millisecond}, OnCycle: onCycle},
	})
	cycle := func() (daemon.Cycle, mark) {
		t.Helper()
		c := r.next(t)
		return c, <-marks
	}
	reconciled := func() (daemon.Cycle, mark) {
		t.Helper()
		for {
			c, m := cycle()
			if c.Reconciled {
				if c.Err != nil {
					t.Fatalf("reconcile of %s failed: %v", c.Revision, c.Err)
				}
				return c, m
			}
		}
	}
	// idle asks for n polls and checks they cost one ref listing each and
	// nothing else: no fetch, no push, no registry request, no commit.
	idle := func(n int, after mark) {
		t.Helper()
		head := srv.Rev("fleet", "main")
		// A registry logs a request after answering it: wait for the
		// lines of the last reconcile's requests before taking offsets.
		f.src.Requests(t, after.src)
		f.dst.Requests(t, after.dst)
		after.src, after.dst = f.src.LogSize(t), f.dst.LogSize(t)
		for i := 0; i < n; i++ {
			r.d.Request(daemon.TriggerPoll)
			c, m := cycle()
			if c.Reconciled || c.Err != nil {
				t.Fatalf("idle poll %d: %+v", i+1, c)
			}
			if d := (gitCounts{m.git.lsRefs - after.git.lsRefs, m.git.fetches - after.git.fetches, m.git.pushes - after.git.pushes}); d != (gitCounts{lsRefs: 1}) {
				t.Errorf("idle poll %d cost %+v git requests, want one ref listing", i+1, d)
			}
			if m.src != after.src || m.dst != after.dst {
				srcReqs, srcLines := f.src.Requests(t, after.src)
				dstReqs, dstLines := f.dst.Requests(t, after.dst)
				t.Errorf("idle poll %d sent registry requests: source %v %v, mirror %v %v", i+1, srcReqs, srcLines, dstReqs, dstLines)
			}
			after = m
		}
		if got := srv.Rev("fleet", "main"); got != head {
			t.Errorf("idle polls moved main: %s -> %s", head, got)
		}
	}
	// pushed checks Ferry's commit on top of main: its parent, trailer,
	// author, and that it touches only the render directory.
	pushed := func(c daemon.Cycle, base string) {
		t.Helper()
		top := srv.Rev("fleet", "main")
		if c.Result == nil || c.Result.Commit != top {
			t.Fatalf("the cycle's commit %+v is not main's tip %s", c.Result, top)
		}
		want := top + " " + base + "|Ferry Bot <ferry-bot@fleet.example>|" + base
		if got := bare("log", "-1", "--format=%H %P|%an <%ae>|%(trailers:key=Ferry-Source-Revision,valueonly,separator=)", "main"); got != want {
			t.Errorf("main's tip: %s\nwant:       %s", got, want)
		}
		for _, p := range strings.Split(bare("diff-tree", "--no-commit-id", "--name-only", "-r", "main"), "\n") {
			if !strings.HasPrefix(p, "clusters/prod/rendered/") {
				t.Errorf("Ferry's commit touches %s", p)
			}
		}
	}

	// 1. Start: the repository is cloned, reconciled, the render pushed.
	c, m := reconciled()
	pushed(c, seed)
	if !strings.Contains(bare("show", "main:clusters/prod/rendered/mirror/mapping.txt"), "kubevirt-wol") {
		t.Error("the pushed render lacks the mirrored images")
	}
	idle(3, m)

	// 2. A spec change, announced by a webhook: a badly signed one is
	// refused, a signed one converges it and pushes the render.
	added := srv.Commit("fleet", "main", "add nfs-provisioner-operator", map[string]string{specFile: f.spec("kubevirt-wol", "nfs-provisioner-operator")})
	hook := r.url("webhook", "/hook")
	body := `{"ref":"refs/heads/main"}`
	if code := post(t, hook, map[string]string{"X-Hub-Signature-256": webhook.Sign([]byte("wrong"), []byte(body))}, body); code != 403 {
		t.Errorf("badly signed webhook: %d, want 403", code)
	}
	if code := post(t, hook, nil, body); code != 401 {
		t.Errorf("unsigned webhook: %d, want 401", code)
	}
	if n := len(r.cycles); n != 0 {
		t.Fatalf("refused webhooks led to %d cycle(s)", n)
	}
	sent := time.Now()
	if code := post(t, hook, map[string]string{"X-Hub-Signature-256": webhook.Sign(secret, []byte(body))}, body); code != 202 {
		t.Fatalf("signed webhook: %d, want 202", code)
	}
	c, m = reconciled()
	t.Logf("webhook to pushed render commit, one package added: %s", time.Since(sent).Round(time.Millisecond))
	if len(c.Triggers) != 1 || c.Triggers[0] != daemon.TriggerWebhook || c.Revision != added {
		t.Errorf("webhook cycle: triggers %v, revision %s, want %s", c.Triggers, c.Revision, added)
	}
	pushed(c, added)
	if !strings.Contains(bare("ls-tree", "-r", "--name-only", "main"), "clusters/prod/rendered/catalogs/community/configs/nfs-provisioner-operator/catalog.yaml") {
		t.Error("the added package is not in the pushed render")
	}
	images := 0
	for _, l := range strings.Split(bare("show", "main:clusters/prod/rendered/mirror/mapping.txt"), "\n") {
		if l != "" {
			images++
		}
	}
	if c.Result.ImagesCopied == 0 || c.Result.ImagesCopied >= images {
		t.Errorf("%d image(s) copied for the added package, of %d in the set", c.Result.ImagesCopied, images)
	}

	// 3. Three idle polls: the daemon's own commit is not new desired
	// state; nothing is committed, nothing sent to the registries. Then
	// the cost of an idle poll, for docs/daemon.md.
	idle(3, m)
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	const polls = 50
	for i := 0; i < polls; i++ {
		r.d.Request(daemon.TriggerPoll)
		m = func() mark { _, m := cycle(); return m }()
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) / polls
	t.Logf("idle poll: 1 git request (ref listing), 0 registry requests; %s CPU per poll in the test process (Ferry and the Go front of git http-backend, whose git processes are not counted)", cpu.Round(10*time.Microsecond))

	// 4. Someone edits only the render directory: not new desired state.
	srv.Commit("fleet", "main", "annotate the render", map[string]string{"clusters/prod/rendered/NOTES.md": "reviewed\n"})
	r.d.Request(daemon.TriggerPoll)
	if c, _ := cycle(); c.Reconciled {
		t.Errorf("a render-only commit was reconciled: %+v", c)
	}

	// 5. While the daemon pushes the render of a spec change, someone
	// pushes another one: the push is rejected, the daemon re-plans on the
	// new tip and pushes on top; both commits survive.
	narrowed := srv.Commit("fleet", "main", "drop nfs-provisioner-operator", map[string]string{specFile: f.spec("kubevirt-wol")})
	foreign := srv.Commit("fleet", "main", "keep nfs-provisioner-operator only", map[string]string{specFile: f.spec("nfs-provisioner-operator")})
	bare("update-ref", "refs/heads/raced", foreign)
	bare("update-ref", "refs/heads/main", narrowed)
	srv.Hook("fleet", "pre-receive", `
if [ ! -e raced ]; then touch raced; env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main `+foreign+`; fi
exit 0
`)
	r.d.Request(daemon.TriggerWebhook)
	c, _ = reconciled()
	pushed(c, foreign)
	if c.Result.Revision != foreign {
		t.Errorf("reconciled %s, want the foreign tip %s", c.Result.Revision, foreign)
	}
	if got := bare("log", "--format=%H", "-3", "main"); got != c.Result.Commit+"\n"+foreign+"\n"+narrowed {
		t.Errorf("main: Ferry's commit, the foreign one, the spec change, want in that order:\n%s", got)
	}
	if tree := bare("ls-tree", "-r", "--name-only", "main"); !strings.Contains(tree, "configs/nfs-provisioner-operator/catalog.yaml") || strings.Contains(tree, "configs/kubevirt-wol/") {
		t.Errorf("the render does not follow the foreign tip's spec (nfs-provisioner-operator only):\n%s", tree)
	}
	mfs, raw := scrape(t, r)
	for result, want := range map[string]float64{"success": 3, "rejected": 1} {
		if got := value(t, mfs, "ferry_git_push_total", "result", result); got != want {
			t.Errorf("ferry_git_push_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	r.stop(t)

	// Nothing holds a planted password: logs, metrics, status, commits,
	// the cache (the clone's .git/config included).
	leaks := []string{r.logs.String(), gitLog.String(), raw, bare("log", "-p", "--all")}
	if !strings.Contains(gitLog.String(), `"url":"`+url+`"`) {
		t.Errorf("gitsync's log does not name the repository by its clean URL:\n%s", gitLog)
	}
	if b, err := os.ReadFile(r.status); err == nil {
		leaks = append(leaks, string(b))
	}
	filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			leaks = append(leaks, p+"\n"+string(b))
		}
		return nil
	})
	for _, s := range leaks {
		for _, planted := range []string{srv.Password, f.dst.Password, string(secret)} {
			if strings.Contains(s, planted) {
				t.Errorf("a planted secret leaked into:\n%.300s", s)
			}
		}
	}
}
