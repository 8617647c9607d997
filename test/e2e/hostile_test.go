package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

// TestReconcileThroughFaultyRegistries runs `ferry reconcile` with real
// distribution registries behind fault proxies. The source throttles with
// Retry-After, bursts 503s, resets connections before and in the middle of
// catalog layers; the mirror refuses uploads and manifest puts for a
// while: the run converges (exit 0) with the default policy. Then the
// source lies about catalog a's layer (other bytes, same size): catalog a
// fails with an error naming the layer and the image and keeps its
// previous render, catalog b (read from the source directly) takes its
// new package, the run exits 1.
func TestReconcileThroughFaultyRegistries(t *testing.T) {
	src, w := communityWorld(t, "kubevirt-wol", "nfs-provisioner-operator")
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	catRef, err := name.ParseReference(w.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(catRef)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	top, _ := layers[len(layers)-1].Digest()
	repo := catRef.Context().RepositoryStr()

	srcFaults := testenv.NewFaults(
		testenv.Fault{Name: "429", Match: testenv.Method(http.MethodGet, repo+"/manifests/"), Times: 1, Serve: testenv.TooManyRequests(1)},
		testenv.Fault{Name: "reset", Match: testenv.Method(http.MethodGet, repo+"/manifests/"), Times: 2, Serve: testenv.Reset},
		testenv.Fault{Name: "503", Match: testenv.BlobGET(""), Times: 3, Serve: testenv.Status(http.StatusServiceUnavailable)},
		testenv.Fault{Name: "reset mid-layer", Match: testenv.BlobGET(top.String()), Times: 2, Serve: testenv.ResetAfter(1000)},
	)
	srcProxy := testenv.StartFaultProxy(t, src.Host, srcFaults)
	dstFaults := testenv.NewFaults(
		testenv.Fault{Name: "429 upload", Match: testenv.Method(http.MethodPost, "/blobs/uploads/"), Times: 2, Serve: testenv.TooManyRequests(1)},
		testenv.Fault{Name: "503 manifest", Match: testenv.Method(http.MethodPut, "/manifests/"), Times: 3, Serve: testenv.Status(http.StatusServiceUnavailable)},
		testenv.Fault{Name: "reset chunk", Match: testenv.Method(http.MethodPatch, "/blobs/uploads/"), Times: 1, Serve: testenv.Reset},
	)
	dstProxy := testenv.StartFaultProxy(t, dst.Host, dstFaults)
	proxied := *dst
	proxied.Host = dstProxy
	auth := testenv.AuthFile(t, &proxied)

	work := t.TempDir()
	git := gitIn(t, work)
	git("init", "-q", "-b", "main")
	spec := func(bPackages ...string) string {
		s := fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Mirror
metadata:
  name: lab
spec:
  registry: %[1]s/ocp
---
apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: a
spec:
  source: %[2]s/%[3]s:v4.20
  target: %[1]s/ocp/catalogs/a:v1
  packages:
    - name: kubevirt-wol
---
apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: b
spec:
  source: %[4]s
  target: %[1]s/ocp/catalogs/b:v1
  packages:
`, dstProxy, srcProxy, repo, w.CatalogTag)
		for _, p := range bPackages {
			s += "    - name: " + p + "\n"
		}
		return s
	}
	writeSpec(t, work, spec("kubevirt-wol"))
	git("add", ".")
	git("commit", "-q", "-m", "spec")
	args := []string{"reconcile", work, "-a", auth, "--cache-dir", t.TempDir(), "--progress", "never"}

	stdout, stderr, code := ferry(t, args...)
	if code != 0 {
		t.Fatalf("reconcile through faults: exit %d\n%s\n%s\nsource faults:\n%s\nmirror faults:\n%s", code, stdout, stderr, srcFaults, dstFaults)
	}
	for _, f := range []struct {
		faults *testenv.Faults
		name   string
		n      int
	}{
		{srcFaults, "429", 1}, {srcFaults, "reset", 2}, {srcFaults, "503", 3}, {srcFaults, "reset mid-layer", 2},
		{dstFaults, "429 upload", 2}, {dstFaults, "503 manifest", 3}, {dstFaults, "reset chunk", 1},
	} {
		if got := f.faults.Count(f.name); got != f.n {
			t.Errorf("fault %q answered %d requests, want %d", f.name, got, f.n)
		}
	}
	if log := srcFaults.Log(); len(log) > 1 && log[1].At.Sub(log[0].At) < 1e9 {
		t.Errorf("came back %s after a 429 with Retry-After: 1", log[1].At.Sub(log[0].At))
	}
	for _, c := range []string{"a", "b"} {
		if !strings.Contains(stdout, "Catalog/"+c+": pushed ") {
			t.Errorf("catalog %s not pushed:\n%s", c, stdout)
		}
	}
	before := readFile(t, work, "rendered/catalogs/a/catalogsource.yaml")
	beforeConfigs := snapshot(t, work+"/rendered/catalogs/a")

	// The source now lies about catalog a's configs layer; catalog b gains
	// a package.
	srcFaults.Set(testenv.Fault{Name: "swap", Match: testenv.BlobGET(top.String()), Serve: testenv.Rewrite(testenv.FlipLastByte)})
	dstFaults.Set()
	writeSpec(t, work, spec("kubevirt-wol", "nfs-provisioner-operator"))
	git("commit", "-q", "-am", "b: add nfs-provisioner-operator")
	stdout, stderr, code = ferry(t, args...)
	if code != 1 {
		t.Fatalf("reconcile with a lying source: exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	t.Logf("reconcile with a lying source:\n%s", stderr)
	want := "failed: catalog a: source: " + srcProxy + "/" + repo + "@"
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "layer "+fmt.Sprint(len(layers)-1)+" ("+top.String()+"): content does not match its digest") {
		t.Errorf("stderr does not name the catalog, image and layer:\n%s", stderr)
	}
	if got := readFile(t, work, "rendered/catalogs/a/catalogsource.yaml"); got != before {
		t.Errorf("catalog a's CatalogSource changed although its source lied:\n%s", got)
	}
	if diff := cmp.Diff(beforeConfigs, snapshot(t, work+"/rendered/catalogs/a")); diff != "" {
		t.Errorf("catalog a's render changed although its source lied (-before +after):\n%s", diff)
	}
	if !strings.Contains(readFile(t, work, "rendered/catalogs/b/configs/nfs-provisioner-operator/catalog.yaml"), "nfs-provisioner-operator") {
		t.Error("catalog b did not take its new package")
	}
	if srcFaults.Count("swap") == 0 {
		t.Error("the lie was never served")
	}

	// diff and render plan the rest and fail at the end.
	stdout, stderr, code = ferry(t, "diff", work, "-a", auth)
	if code != 3 || !strings.Contains(stdout, "Catalog/a: failed, keeps its previous render: source: ") || !strings.Contains(stdout, "Catalog/b: unchanged") {
		t.Errorf("diff with a lying source: exit %d, want 3 with the plan printed\n%s\n%s", code, stdout, stderr)
	}
	out := t.TempDir()
	stdout, stderr, code = ferry(t, "render", work, "-a", auth, "-o", out)
	if code != 1 || !strings.Contains(stderr, "failed: catalog a: ") {
		t.Errorf("render with a lying source: exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	if got := readFile(t, out, "catalogs/b/configs/nfs-provisioner-operator/catalog.yaml"); !strings.Contains(got, "nfs-provisioner-operator") {
		t.Error("render did not write catalog b")
	}
}
