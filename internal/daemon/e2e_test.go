package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ferry-gitops/ferry/internal/daemon"
	"github.com/ferry-gitops/ferry/internal/daemon/localdir"
	"github.com/ferry-gitops/ferry/internal/daemon/pipelinerunner"
	"github.com/ferry-gitops/ferry/internal/daemon/webhook"
	"github.com/ferry-gitops/ferry/internal/logging"
	"github.com/ferry-gitops/ferry/internal/pipeline"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
	"github.com/ferry-gitops/ferry/spec"
)

// TestMain shares one API server between the leader-election tests.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func skipE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

// fixture is a source registry holding a world built from real
// community-operators packages, an authenticated mirror, and a config
// repo (a git work tree) whose spec mirrors one package.
type fixture struct {
	src, dst *testenv.Registry
	w        *world.World
	auth     string // -a file with the mirror's (planted) password
	dir      string
	git      func(args ...string) string
	mirror   string // the Mirror's registry host (dst, or a proxy to it)
}

func newFixture(t *testing.T, packages ...string) *fixture {
	t.Helper()
	f := &fixture{}
	f.src = testenv.StartRegistry(t, testenv.RegistryOptions{})
	f.dst = testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	f.auth = testenv.AuthFile(t, f.dst)
	f.mirror = f.dst.Host
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
	opts := world.DefaultOptions(f.src.Host)
	opts.CatalogRepository = "redhat/community-operator-index"
	opts.CatalogTag = "v4.20"
	if f.w, err = world.Build(t.Context(), os.DirFS(sub), opts); err != nil {
		t.Fatal(err)
	}
	f.dir = t.TempDir()
	f.git = gitIn(t, f.dir)
	f.git("init", "-q", "-b", "main")
	return f
}

// spec is the config repo's catalog.yaml keeping packages.
func (f *fixture) spec(packages ...string) string {
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
  packages:
`, f.mirror, f.w.CatalogTag)
	for _, p := range packages {
		fmt.Fprintf(&b, "    - name: %s\n", p)
	}
	return b.String()
}

func (f *fixture) writeSpec(t *testing.T, body, message string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "catalog.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	f.git("add", "catalog.yaml")
	f.git("commit", "-q", "-m", message)
}

func (f *fixture) commits() string { return f.git("rev-list", "--count", "HEAD") }

func gitIn(t *testing.T, dir string) func(args ...string) string {
	bin := testenv.Tool(t, "git")
	home := t.TempDir()
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.com"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
}

// syncBuffer is a log destination tests read while the daemon writes.
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

// running is a daemon started in-process with its listeners.
type running struct {
	d       *daemon.Daemon
	cycles  chan daemon.Cycle
	servers *daemon.Servers
	logs    *syncBuffer
	status  string
	cancel  context.CancelFunc
	done    chan error
}

type daemonConfig struct {
	opts    daemon.Options
	source  daemon.Source // default: the fixture's directory, watched
	secret  []byte
	noStart bool
}

// startDaemon runs the daemon the way ferry run wires it, in-process, on
// the fixture's directory.
func startDaemon(t *testing.T, f *fixture, dir string, c daemonConfig) *running {
	t.Helper()
	r := &running{cycles: make(chan daemon.Cycle, 1000), logs: &syncBuffer{}, done: make(chan error, 1)}
	log := logging.New(r.logs, logging.JSON, slog.LevelDebug)
	src := c.source
	if src == nil {
		src = &localdir.Source{Dir: dir, RenderDir: spec.DefaultRenderDir, Debounce: 50 * time.Millisecond}
	}
	onCycle := c.opts.OnCycle
	cache := t.TempDir()
	runner := &pipelinerunner.Runner{
		Settings: pipeline.Settings{
			RenderDir: spec.DefaultRenderDir, RegistryConfig: f.auth, CacheDir: cache, Commit: true,
			ClusterSkipped: "test: no cluster", Log: log,
		},
		LockCacheDir: cache, Log: log,
	}
	opts := c.opts
	opts.Log = log
	opts.Metrics = daemon.NewMetrics()
	r.status = filepath.Join(cache, "status.json")
	opts.Sinks = append(opts.Sinks, daemon.FileSink{Path: r.status})
	opts.OnCycle = func(cy daemon.Cycle) {
		if onCycle != nil {
			onCycle(cy)
		}
		r.cycles <- cy
	}
	r.d = daemon.New(src, runner, opts)
	ls := []daemon.Listener{
		{Name: "health", Addr: "127.0.0.1:0", Handler: r.d.HealthHandler()},
		{Name: "metrics", Addr: "127.0.0.1:0", Handler: opts.Metrics.Handler()},
	}
	if c.secret != nil {
		mux := http.NewServeMux()
		mux.Handle("/hook", &webhook.Handler{Secret: c.secret, Accept: func(*http.Request) { r.d.Request(daemon.TriggerWebhook) }, Count: opts.Metrics.Webhook})
		ls = append(ls, daemon.Listener{Name: "webhook", Addr: "127.0.0.1:0", Handler: mux})
	}
	var err error
	if r.servers, err = daemon.Serve(log, ls...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.d.Run(ctx) }()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("daemon log:\n%s", r.logs)
		}
	})
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("daemon: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the daemon did not stop within 30 s of cancellation")
	}
	r.servers.Shutdown(context.Background())
}

// next waits for the next cycle; only a hang fails on time.
func (r *running) next(t *testing.T) daemon.Cycle {
	t.Helper()
	select {
	case c := <-r.cycles:
		return c
	case <-time.After(3 * time.Minute):
		t.Fatalf("no cycle within 3 minutes; log:\n%s", r.logs)
	}
	return daemon.Cycle{}
}

// reconciled waits for the next cycle that reconciled and requires it to
// have succeeded.
func (r *running) reconciled(t *testing.T) daemon.Cycle {
	t.Helper()
	for {
		c := r.next(t)
		if !c.Reconciled {
			continue
		}
		if c.Err != nil {
			t.Fatalf("reconcile of %s failed: %v", c.Revision, c.Err)
		}
		return c
	}
}

func (r *running) url(listener, path string) string {
	return "http://" + r.servers.Addrs[listener] + path
}

// scrape reads /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, r *running) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get(r.url("metrics", "/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs, string(raw)
}

// value is the value of the series of name whose labels include labels.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("/metrics lacks %s", name)
	}
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && have[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("%s%v: no such series", name, labels)
	return 0
}

func post(t *testing.T, url string, headers map[string]string, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// verifyMirror checks that every image the render's mapping.txt names is
// in the mirror under the source's digest.
func verifyMirror(t *testing.T, f *fixture, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "rendered/mirror/mapping.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines {
		srcRef, dstRef, _ := strings.Cut(l, "=")
		_, digest, _ := strings.Cut(srcRef, "@")
		ref, err := name.ParseReference(dstRef)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(ref, remote.WithAuth(f.dst.Auth()))
		if err != nil {
			t.Errorf("%s: %v", dstRef, err)
			continue
		}
		if desc.Digest.String() != digest {
			t.Errorf("%s: digest %s, want %s", dstRef, desc.Digest, digest)
		}
	}
	return len(lines)
}
