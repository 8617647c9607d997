package cluster

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/reconcile"
)

// BenchmarkClusterApply puts the cluster step next to kubectl on the same
// objects, against the same real API server: 20 CatalogSources, the
// ImageDigestMirrorSet of the certified and community v4.20 catalogs'
// repositories split into several objects, and a samples Config.
//
//	go test ./internal/cluster -run '^$' -bench ClusterApply -benchtime 5x
//
// ferry/* is the cluster step of a reconcile with --wait=0, run by
// reconcile.Reconciler: one LIST per kind it applies or guards, a Diff per
// object (no request when unchanged, else a server-side dry-run) and an
// apply per changed object, mirror sets first. kubectl/* runs
// `kubectl apply --server-side -f DIR -R` on the same objects written as a
// render directory (a process per run, discovery cache warm). "first"
// creates everything (fresh names each iteration), "noop" applies what is
// already there. requests/op, writes/op and lists/op are counted by the
// API server's audit log, not by the clients.
func BenchmarkClusterApply(b *testing.B) {
	skipE2E(b)
	// A server of its own: the LISTs read what is there, and the objects
	// of tests would make them read more than a cluster holds.
	kube := testenv.StartKube(b)
	sources := benchRepositories(b)
	kubectl := testenv.Tool(b, "kubectl")

	b.Run("ferry/first", func(b *testing.B) {
		c, user := benchClient(b, kube)
		var events testenv.AuditEvents
		for range b.N {
			b.StopTimer()
			objs := benchObjects(b, kube, sources)
			mark := kube.AuditMark(b)
			b.StartTimer()
			if err := ferryStep(b.Context(), c, objs); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			events = append(events, kube.AuditEvents(b, mark).By(user)...)
			deleteAll(b, kube, objs)
			b.StartTimer()
		}
		b.StopTimer()
		reportAudit(b, events, len(benchObjects(b, kube, sources)))
	})
	b.Run("ferry/noop", func(b *testing.B) {
		c, user := benchClient(b, kube)
		objs := benchObjects(b, kube, sources)
		if err := ferryStep(b.Context(), c, objs); err != nil {
			b.Fatal(err)
		}
		mark := kube.AuditMark(b)
		b.ResetTimer()
		for range b.N {
			if err := ferryStep(b.Context(), c, objs); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportAudit(b, kube.AuditEvents(b, mark).By(user), len(objs))
		deleteAll(b, kube, objs)
	})
	b.Run("kubectl/first", func(b *testing.B) {
		user := "ferry-bench:" + b.Name() + ":" + suffix()
		cfg, cache := kube.KubeconfigAs(b, user), b.TempDir()
		warmKubectl(b, kubectl, cfg, cache)
		var events testenv.AuditEvents
		n := 0
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			objs := benchObjects(b, kube, sources)
			n = len(objs)
			dir := writeRenderDir(b, objs)
			mark := kube.AuditMark(b)
			b.StartTimer()
			runKubectl(b, kubectl, cfg, cache, dir)
			b.StopTimer()
			events = append(events, kube.AuditEvents(b, mark).By(user)...)
			deleteAll(b, kube, objs)
			b.StartTimer()
		}
		b.StopTimer()
		reportAudit(b, events, n)
	})
	b.Run("kubectl/noop", func(b *testing.B) {
		user := "ferry-bench:" + b.Name() + ":" + suffix()
		cfg, cache := kube.KubeconfigAs(b, user), b.TempDir()
		objs := benchObjects(b, kube, sources)
		dir := writeRenderDir(b, objs)
		warmKubectl(b, kubectl, cfg, cache)
		runKubectl(b, kubectl, cfg, cache, dir)
		mark := kube.AuditMark(b)
		b.ResetTimer()
		for range b.N {
			runKubectl(b, kubectl, cfg, cache, dir)
		}
		b.StopTimer()
		reportAudit(b, kube.AuditEvents(b, mark).By(user), len(objs))
		deleteAll(b, kube, objs)
	})
}

// deleteAll removes a run's objects (as the admin, outside the counts), so
// each run finds the cluster as the first one did.
func deleteAll(b *testing.B, kube *testenv.Kube, objs []*unstructured.Unstructured) {
	b.Helper()
	for _, o := range objs {
		m := knownKinds[o.GroupVersionKind()]
		ri := kube.Dynamic().Resource(m.gvr)
		var err error
		if m.namespaced {
			err = ri.Namespace(o.GetNamespace()).Delete(b.Context(), o.GetName(), metav1.DeleteOptions{})
		} else {
			err = ri.Delete(b.Context(), o.GetName(), metav1.DeleteOptions{})
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchClient(b *testing.B, kube *testenv.Kube) (*Client, string) {
	user := "ferry-bench:" + b.Name() + ":" + suffix()
	c, err := New(Options{Config: kube.As(user)})
	if err != nil {
		b.Fatal(err)
	}
	return c, user
}

// ferryStep is the cluster step of a reconcile with --wait=0, the real
// one (reconcile.Reconciler), on the objects laid out as a render.
func ferryStep(ctx context.Context, c *Client, desired []*unstructured.Unstructured) error {
	r := &reconcile.Reconciler{Cluster: c}
	_, _, err := r.ApplyRender(ctx, renderFiles(desired), "bench", reconcile.Options{})
	return err
}

func reportAudit(b *testing.B, events testenv.AuditEvents, objects int) {
	n := float64(b.N)
	b.ReportMetric(float64(objects), "objects")
	dryRuns := 0
	for _, e := range events {
		if e.DryRun() {
			dryRuns++
		}
	}
	b.ReportMetric(float64(len(events))/n, "requests/op")
	b.ReportMetric(float64(len(events.Writes()))/n, "writes/op")
	b.ReportMetric(float64(events.Count("list", ""))/n, "lists/op")
	b.ReportMetric(float64(dryRuns)/n, "dryruns/op")
}

const benchCatalogSources = 20

// benchObjects returns a fresh set of objects, in apply order: the split
// mirror set, the CatalogSources (in a new namespace), the samples Config.
func benchObjects(b *testing.B, kube *testenv.Kube, sources []string) []*unstructured.Unstructured {
	b.Helper()
	s := suffix()
	ns := kube.NewNamespace(b)
	var objs []*unstructured.Unstructured
	const perObject = 150
	for i := 0; i*perObject < len(sources); i++ {
		chunk := sources[i*perObject : min((i+1)*perObject, len(sources))]
		objs = append(objs, mirrorSet("ImageDigestMirrorSet", fmt.Sprintf("ferry-%s-%d", s, i), "mirror.example.com:5000/olm", chunk...))
	}
	for i := range benchCatalogSources {
		name := fmt.Sprintf("catalog-%02d", i)
		objs = append(objs, catalogSource(ns, name, "mirror.example.com:5000/olm/"+name+"@"+digest(name)))
	}
	objs = append(objs, samplesConfig("samples-"+s, "mirror.example.com:5000", "jenkins", "jenkins-agent-base", "fuse7-java-openshift"))
	return objs
}

var (
	repoOnce sync.Once
	repos    []string
	repoErr  error
)

// imageLine finds an image reference in a file-based catalog's YAML.
var imageLine = regexp.MustCompile(`^\s*(?:-\s+)?image:\s+"?([a-z0-9.-]+\.[a-z]+(?::[0-9]+)?/[a-z0-9._/-]+)[@:]`)

// benchRepositories reads the image repositories of the real certified and
// community v4.20 catalogs (testdata/fbc/large): the sources of the mirror
// set a reconcile of both catalogs renders.
func benchRepositories(b *testing.B) []string {
	repoOnce.Do(func() {
		seen := map[string]bool{}
		for _, f := range []string{"certified-operators-catalogs-v4.20.tar.gz", "community-operators-prod-catalogs-v4.20.tar.gz"} {
			if repoErr = scanTarGz(filepath.Join(testenv.RepoRoot(b), "testdata", "fbc", "large", f), func(line string) {
				if m := imageLine.FindStringSubmatch(line); m != nil {
					seen[m[1]] = true
				}
			}); repoErr != nil {
				return
			}
		}
		for r := range seen {
			repos = append(repos, r)
		}
		slices.Sort(repos)
	})
	if repoErr != nil {
		b.Fatal(repoErr)
	}
	if len(repos) < 300 {
		b.Fatalf("only %d repositories read from the catalogs", len(repos))
	}
	return repos
}

func scanTarGz(path string, line func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		sc := bufio.NewScanner(tr)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			line(sc.Text())
		}
		if err := sc.Err(); err != nil {
			return err
		}
	}
}

// renderFiles lays objs out as a render directory does.
func renderFiles(objs []*unstructured.Unstructured) map[string][]byte {
	files := map[string][]byte{}
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			panic(err)
		}
		var path string
		switch o.GroupVersionKind() {
		case reconcile.GVKIDMS:
			path = "mirror/imagedigestmirrorset.yaml"
		case reconcile.GVKCatalogSource:
			path = "catalogs/" + o.GetName() + "/catalogsource.yaml"
		case reconcile.GVKSamplesConfig:
			path = "samples/config.yaml"
		}
		if files[path] != nil {
			files[path] = append(files[path], "---\n"...)
		}
		files[path] = append(files[path], y...)
	}
	return files
}

// writeRenderDir writes objs as a render directory lays them out.
func writeRenderDir(b *testing.B, objs []*unstructured.Unstructured) string {
	b.Helper()
	dir := b.TempDir()
	for p, data := range renderFiles(objs) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// warmKubectl fills kubectl's discovery cache, as on any workstation that
// has used kubectl before.
func warmKubectl(b *testing.B, kubectl, kubeconfig, cache string) {
	b.Helper()
	out, err := exec.CommandContext(b.Context(), kubectl, "--kubeconfig", kubeconfig, "--cache-dir", cache, "api-resources", "-o", "name").CombinedOutput()
	if err != nil {
		b.Fatalf("kubectl api-resources: %v\n%s", err, out)
	}
}

func runKubectl(b *testing.B, kubectl, kubeconfig, cache, dir string) {
	b.Helper()
	out, err := exec.CommandContext(b.Context(), kubectl, "--kubeconfig", kubeconfig, "--cache-dir", cache,
		"apply", "--server-side", "-R", "-f", dir).CombinedOutput()
	if err != nil {
		b.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "serverside-applied"); n == 0 {
		b.Fatalf("kubectl applied nothing:\n%s", out)
	}
}
