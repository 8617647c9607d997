package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/ferry-gitops/ferry/internal/cli"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The cluster step end to end: real registries, the real API server with
// the real CRDs, Ferry run as the CLI runs it. Nothing here runs OLM,
// operator-controller or the samples operator (no kubelet): the tests play
// their part explicitly — olmPlayer marks a CatalogSource READY and a
// ClusterCatalog Serving once it sees their new image, and the samples
// test moves the Config's status through a removal by hand.

var (
	gvrCatalogSource    = schema.GroupVersionResource{Group: "operators.coreos.com", Version: "v1alpha1", Resource: "catalogsources"}
	gvrSubscription     = schema.GroupVersionResource{Group: "operators.coreos.com", Version: "v1alpha1", Resource: "subscriptions"}
	gvrCSV              = schema.GroupVersionResource{Group: "operators.coreos.com", Version: "v1alpha1", Resource: "clusterserviceversions"}
	gvrClusterCatalog   = schema.GroupVersionResource{Group: "olm.operatorframework.io", Version: "v1", Resource: "clustercatalogs"}
	gvrClusterExtension = schema.GroupVersionResource{Group: "olm.operatorframework.io", Version: "v1", Resource: "clusterextensions"}
	gvrIDMS             = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "imagedigestmirrorsets"}
	gvrITMS             = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "imagetagmirrorsets"}
	gvrSamples          = schema.GroupVersionResource{Group: "samples.operator.openshift.io", Version: "v1", Resource: "configs"}
)

// clusterEnv is one test's share of the shared API server: its own
// impersonated user (so the audit log tells its requests apart), its own
// namespace for CatalogSources, and a unique instance name for everything
// cluster-scoped.
type clusterEnv struct {
	kube       *testenv.Kube
	dyn        dynamic.Interface
	user       string
	kubeconfig string
	ns         string
	instance   string
	src, dst   *testenv.Registry
	w          *world.World
	auth       string
	work       string
	git        func(args ...string) string
}

func newClusterEnv(t *testing.T, packages ...string) *clusterEnv {
	t.Helper()
	kube := testenv.SharedKube(t)
	suffix := strings.ToLower(rand.Text()[:6])
	e := &clusterEnv{kube: kube, dyn: kube.Dynamic(), user: "ferry-" + suffix, ns: kube.NewNamespace(t), instance: "lab-" + suffix}
	e.kubeconfig = kube.KubeconfigAs(t, e.user)
	e.src, e.w = communityWorld(t, packages...)
	e.dst = testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	e.auth = testenv.AuthFile(t, e.dst)
	e.work = t.TempDir()
	e.git = gitIn(t, e.work)
	e.git("init", "-q", "-b", "main")
	t.Cleanup(func() { e.deleteClusterScoped(t) })
	return e
}

// spec writes the Mirror and a Catalog serving as both kinds with the
// given packages block, and commits it.
func (e *clusterEnv) spec(t *testing.T, packages string, extra ...string) {
	t.Helper()
	body := fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Mirror
metadata:
  name: %s
spec:
  registry: %s/ocp
---
apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community
spec:
  source: %s
  serveAs: [CatalogSource, ClusterCatalog]
  catalogSource:
    name: community
    namespace: %s
  clusterCatalog:
    name: community-%s
  packages:
%s`, e.instance, e.dst.Host, e.w.CatalogTag, e.ns, e.instance, packages)
	writeSpec(t, e.work, body+strings.Join(extra, ""))
	e.git("add", ".")
	e.git("commit", "-q", "-m", "spec", "--allow-empty")
}

func (e *clusterEnv) ferry(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	full := append([]string{args[0], e.work, "-a", e.auth, "--kubeconfig", e.kubeconfig}, args[1:]...)
	if args[0] == "reconcile" {
		full = append(full, "--progress", "never", "--cache-dir", t.TempDir())
	}
	return ferry(t, full...)
}

func (e *clusterEnv) get(t *testing.T, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	var ri dynamic.ResourceInterface = e.dyn.Resource(gvr)
	if ns != "" {
		ri = e.dyn.Resource(gvr).Namespace(ns)
	}
	u, err := ri.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return u
}

func (e *clusterEnv) catalogSourceImage(t *testing.T) string {
	t.Helper()
	img, _, _ := unstructured.NestedString(e.get(t, gvrCatalogSource, e.ns, "community").Object, "spec", "image")
	return img
}

// renderedImage is the digest the render pins the catalog to.
func (e *clusterEnv) renderedImage(t *testing.T) string {
	t.Helper()
	cs := readFile(t, e.work, "rendered/catalogs/community/catalogsource.yaml")
	i := strings.Index(cs, "image: ")
	return strings.Fields(cs[i+len("image: "):])[0]
}

func (e *clusterEnv) deleteClusterScoped(t *testing.T) {
	sel := metav1.ListOptions{LabelSelector: "ferry.dev/instance=" + e.instance}
	for _, gvr := range []schema.GroupVersionResource{gvrIDMS, gvrITMS, gvrClusterCatalog, gvrClusterExtension} {
		_ = e.dyn.Resource(gvr).DeleteCollection(context.Background(), metav1.DeleteOptions{}, sel)
	}
}

// olmPlayer plays OLM and operator-controller for this test's catalogs:
// whenever a CatalogSource of the namespace or the test's ClusterCatalog
// shows an image it has not marked yet, it marks it served (READY after
// the change; Serving with that reference resolved), as the real
// controllers would once the new catalog pod serves.
func (e *clusterEnv) olmPlayer(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() { cancel(); wg.Wait() })
	go func() {
		defer wg.Done()
		// What was marked, by object and spec generation: a spec that
		// changes back to an earlier image is a new generation.
		marked := map[string]int64{}
		for ctx.Err() == nil {
			if l, err := e.dyn.Resource(gvrCatalogSource).Namespace(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
				for i := range l.Items {
					u := &l.Items[i]
					if marked["cs/"+u.GetName()] == u.GetGeneration() {
						continue
					}
					time.Sleep(1100 * time.Millisecond) // lastConnect has second resolution: strictly after the apply
					_ = unstructured.SetNestedMap(u.Object, map[string]any{"lastObservedState": "READY", "lastConnect": time.Now().UTC().Format(time.RFC3339), "address": "community." + e.ns + ".svc:50051"}, "status", "connectionState")
					if _, err := e.dyn.Resource(gvrCatalogSource).Namespace(e.ns).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err == nil {
						marked["cs/"+u.GetName()] = u.GetGeneration()
					}
				}
			}
			if u, err := e.dyn.Resource(gvrClusterCatalog).Get(ctx, "community-"+e.instance, metav1.GetOptions{}); err == nil {
				ref, _, _ := unstructured.NestedString(u.Object, "spec", "source", "image", "ref")
				if marked["cc"] != u.GetGeneration() {
					now := time.Now().UTC().Format(time.RFC3339)
					_ = unstructured.SetNestedField(u.Object, map[string]any{"type": "Image", "image": map[string]any{"ref": ref}}, "status", "resolvedSource")
					_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Serving", "status": "True", "reason": "Available", "message": "served by the test", "lastTransitionTime": now}}, "status", "conditions")
					if _, err := e.dyn.Resource(gvrClusterCatalog).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err == nil {
						marked["cc"] = u.GetGeneration()
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}

// subscribe creates a Subscription (and its installed CSV) in a namespace
// of its own, as OLM leaves them after an install.
func (e *clusterEnv) subscribe(t *testing.T, pkg, channel, installed, version string) (ns, name string) {
	t.Helper()
	ns, name = e.kube.NewNamespace(t), pkg
	sub := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operators.coreos.com/v1alpha1", "kind": "Subscription",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"name": pkg, "channel": channel, "source": "community", "sourceNamespace": e.ns},
	}}
	created, err := e.dyn.Resource(gvrSubscription).Namespace(ns).Create(context.Background(), sub, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedMap(created.Object, map[string]any{"installedCSV": installed, "currentCSV": installed, "state": "AtLatestKnown", "lastUpdated": time.Now().UTC().Format(time.RFC3339)}, "status")
	if _, err := e.dyn.Resource(gvrSubscription).Namespace(ns).UpdateStatus(context.Background(), created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	csv := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operators.coreos.com/v1alpha1", "kind": "ClusterServiceVersion",
		"metadata": map[string]any{"name": installed, "namespace": ns},
		"spec": map[string]any{"version": version, "displayName": pkg, "install": map[string]any{"strategy": "deployment"},
			"installModes": []any{map[string]any{"type": "AllNamespaces", "supported": true}}},
	}}
	if _, err := e.dyn.Resource(gvrCSV).Namespace(ns).Create(context.Background(), csv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns, name
}

const kokuBothChannels = `    - name: koku-metrics-operator
      defaultChannel: beta
      channels:
        - name: alpha
          minVersion: 4.4.0
        - name: beta
          minVersion: 4.4.0
`

// TestClusterStepAppliesInSafeOrder: a first reconcile mirrors, pushes,
// applies the mirror sets before the catalog objects (the order of writes
// from the API server's audit log, one write per object), waits for the
// catalogs to serve and commits; --dry-run and diff before it write
// nothing to the cluster; the rerun writes nothing and reads one LIST per
// kind; the mirror's password is in no output and no object.
func TestClusterStepAppliesInSafeOrder(t *testing.T) {
	e := newClusterEnv(t, "koku-metrics-operator")
	e.spec(t, kokuBothChannels)
	subNS, _ := e.subscribe(t, "koku-metrics-operator", "alpha", "koku-metrics-operator.v4.4.1", "4.4.1")

	mark := e.kube.AuditMark(t)
	stdout, stderr, code := e.ferry(t, "reconcile", "--dry-run")
	if code != 0 || !strings.Contains(stdout, "CatalogSource/"+e.ns+"/community: create") || !strings.Contains(stdout, "ClusterCatalog/community-"+e.instance+": create") {
		t.Fatalf("--dry-run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, _, code := e.ferry(t, "diff"); code != 1 {
		t.Errorf("diff before the first reconcile: exit %d, want 1", code)
	}
	if w := e.kube.AuditEvents(t, mark).By(e.user).Writes(); len(w) != 0 {
		t.Fatalf("--dry-run and diff wrote to the cluster: %v", w.Strings())
	}

	e.olmPlayer(t)
	mark = e.kube.AuditMark(t)
	stdout, stderr, code = e.ferry(t, "reconcile", "--wait", "2m")
	if code != 0 {
		t.Fatalf("reconcile: exit %d\n%s\n%s", code, stdout, stderr)
	}
	writes := e.kube.AuditEvents(t, mark).By(e.user).Writes()
	t.Logf("first apply, writes in order:\n%s", strings.Join(writes.Strings(), "\n"))
	lastMirrorSet, firstCatalog := -1, len(writes)
	perObject := map[string]int{}
	for i, w := range writes {
		perObject[w.Resource+"/"+w.Namespace+"/"+w.Name]++
		switch w.Resource {
		case "imagedigestmirrorsets", "imagetagmirrorsets":
			lastMirrorSet = i
		case "catalogsources", "clustercatalogs":
			firstCatalog = min(firstCatalog, i)
		}
	}
	if lastMirrorSet < 0 || firstCatalog == len(writes) || lastMirrorSet > firstCatalog {
		t.Errorf("the mirror sets were not all written before the catalog objects: %v", writes.Strings())
	}
	for obj, n := range perObject {
		if n != 1 {
			t.Errorf("%s written %d times, want once", obj, n)
		}
	}
	if got, want := e.catalogSourceImage(t), e.renderedImage(t); got != want {
		t.Errorf("CatalogSource spec.image %s, want the rendered %s", got, want)
	}
	verifyMirror(t, e.dst, e.work)
	cc := e.get(t, gvrClusterCatalog, "", "community-"+e.instance)
	if ref, _, _ := unstructured.NestedString(cc.Object, "spec", "source", "image", "ref"); ref != e.renderedImage(t) {
		t.Errorf("ClusterCatalog ref %s, want %s", ref, e.renderedImage(t))
	}
	if cc.GetLabels()["ferry.dev/instance"] != e.instance || cc.GetLabels()["app.kubernetes.io/managed-by"] != "ferry" {
		t.Errorf("ClusterCatalog labels %v", cc.GetLabels())
	}
	if !strings.Contains(readFile(t, e.work, "rendered/catalogs/community/catalogsource.yaml"), "ferry.dev/instance: "+e.instance) {
		t.Error("the rendered CatalogSource lacks the instance label")
	}

	// The rerun: no write, one LIST per kind, nothing committed.
	head := e.git("rev-parse", "HEAD")
	mark = e.kube.AuditMark(t)
	stdout, stderr, code = e.ferry(t, "reconcile", "--wait", "2m")
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", code, stdout, stderr)
	}
	events := e.kube.AuditEvents(t, mark).By(e.user)
	if w := events.Writes(); len(w) != 0 {
		t.Errorf("the no-op rerun wrote to the cluster: %v", w.Strings())
	}
	lists := map[string]int{}
	for _, ev := range events {
		if ev.Verb != "list" {
			t.Errorf("the no-op rerun sent more than LISTs: %s", ev)
		}
		lists[ev.Resource]++
	}
	for res, n := range lists {
		if n != 1 {
			t.Errorf("%s listed %d times, want once", res, n)
		}
	}
	t.Logf("no-op rerun: %d requests, all LISTs: %v", len(events), lists)
	if got := e.git("rev-parse", "HEAD"); got != head {
		t.Error("the no-op rerun committed")
	}

	// The password is in no output and in no object.
	out := stdout + stderr
	for _, gvr := range []schema.GroupVersionResource{gvrCatalogSource, gvrSubscription} {
		l, _ := e.dyn.Resource(gvr).Namespace(e.ns).List(context.Background(), metav1.ListOptions{})
		b, _ := json.Marshal(l)
		out += string(b)
	}
	b, _ := json.Marshal(cc)
	out += string(b)
	if strings.Contains(out, e.dst.Password) {
		t.Error("the mirror's password appears in the output or in an object")
	}
	_ = subNS
}

// TestClusterStepGuards: a hand edit of spec.image is a conflict naming
// its manager and --force-conflicts takes it over; a selection that drops
// a Subscription's channel, or no longer satisfies a ClusterExtension's
// version range, is breaking (shown by diff, not applied without
// --allow-breaking); a catalog whose images are not all in the mirror is
// held back in the cluster too; prune deletes only with --prune, never a
// CatalogSource in use without --allow-breaking, never what Ferry does not
// own.
func TestClusterStepGuards(t *testing.T) {
	e := newClusterEnv(t, "koku-metrics-operator", "nfs-provisioner-operator")
	e.spec(t, kokuBothChannels)
	e.olmPlayer(t)
	if stdout, stderr, code := e.ferry(t, "reconcile", "--wait", "2m"); code != 0 {
		t.Fatalf("first reconcile: exit %d\n%s\n%s", code, stdout, stderr)
	}
	rendered := e.renderedImage(t)

	t.Run("hand edit", func(t *testing.T) {
		edited := strings.Replace(rendered, "@sha256:", "@sha256:0", 1)[:len(rendered)]
		patch := fmt.Sprintf(`{"apiVersion":"operators.coreos.com/v1alpha1","kind":"CatalogSource","metadata":{"name":"community","namespace":%q},"spec":{"image":%q}}`, e.ns, edited)
		force := true
		if _, err := e.dyn.Resource(gvrCatalogSource).Namespace(e.ns).Patch(context.Background(), "community", types.ApplyPatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kubectl-edit", Force: &force}); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := e.ferry(t, "reconcile", "--wait", "2m")
		if code != 1 || !strings.Contains(stdout+stderr, `.spec.image owned by "kubectl-edit"`) {
			t.Fatalf("reconcile over a hand edit: exit %d, want 1 with a conflict naming kubectl-edit\n%s\n%s", code, stdout, stderr)
		}
		if got := e.catalogSourceImage(t); got != edited {
			t.Errorf("the hand edit was overwritten without --force-conflicts: %s", got)
		}
		if stdout, stderr, code := e.ferry(t, "reconcile", "--wait", "2m", "--force-conflicts"); code != 0 {
			t.Fatalf("--force-conflicts: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if got := e.catalogSourceImage(t); got != rendered {
			t.Errorf("--force-conflicts did not take spec.image over: %s", got)
		}
	})

	t.Run("breaking", func(t *testing.T) {
		subNS, subName := e.subscribe(t, "koku-metrics-operator", "alpha", "koku-metrics-operator.v4.4.1", "4.4.1")
		e.spec(t, `    - name: koku-metrics-operator
      defaultChannel: beta
      channels:
        - name: beta
          minVersion: 4.4.0
`)
		mark := e.kube.AuditMark(t)
		stdout, stderr, code := e.ferry(t, "diff")
		if code != 1 || !strings.Contains(stdout, "CatalogSource/"+e.ns+"/community: breaking") ||
			!strings.Contains(stdout, fmt.Sprintf("Subscription %s/%s: channel alpha of package koku-metrics-operator is not in the new catalog", subNS, subName)) {
			t.Fatalf("diff of a breaking change: exit %d\n%s\n%s", code, stdout, stderr)
		}
		t.Logf("what diff shows for a breaking change:\n%s", stdout)
		stdout, stderr, code = e.ferry(t, "reconcile", "--wait", "2m")
		if code != 1 || e.catalogSourceImage(t) != rendered {
			t.Fatalf("a breaking change was applied (exit %d)\n%s\n%s", code, stdout, stderr)
		}
		if w := e.kube.AuditEvents(t, mark).By(e.user).Writes(); strings.Contains(strings.Join(w.Strings(), "\n"), "catalogsources") {
			t.Errorf("the breaking CatalogSource was written: %v", w.Strings())
		}
		// The render holds the catalog back too, so a GitOps tool applying
		// it does not make the change either.
		if got := e.renderedImage(t); got != rendered {
			t.Errorf("the render moved to the breaking catalog: %s", got)
		}
		if _, _, code := e.ferry(t, "reconcile", "--wait", "2m", "--allow-breaking"); code != 0 {
			t.Fatalf("--allow-breaking: exit %d", code)
		}
		if e.catalogSourceImage(t) == rendered {
			t.Error("--allow-breaking did not apply the change")
		}
		rendered = e.renderedImage(t)
		if err := e.dyn.Resource(gvrSubscription).Namespace(subNS).Delete(context.Background(), subName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ClusterExtension version range", func(t *testing.T) {
		ext := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "olm.operatorframework.io/v1", "kind": "ClusterExtension",
			"metadata": map[string]any{"name": "koku-" + e.instance, "labels": map[string]any{"ferry.dev/instance": e.instance}},
			"spec": map[string]any{"namespace": "koku", "serviceAccount": map[string]any{"name": "installer"},
				"source": map[string]any{"sourceType": "Catalog", "catalog": map[string]any{
					"packageName": "koku-metrics-operator", "version": ">=4.4.1",
					"selector": map[string]any{"matchLabels": map[string]any{"olm.operatorframework.io/metadata.name": "community-" + e.instance}}}}},
		}}
		if _, err := e.dyn.Resource(gvrClusterExtension).Create(context.Background(), ext, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.spec(t, `    - name: koku-metrics-operator
      defaultChannel: beta
      channels:
        - name: beta
          minVersion: 4.3.0
          maxVersion: 4.4.0
`)
		stdout, stderr, code := e.ferry(t, "reconcile", "--wait", "2m")
		if code != 1 || !strings.Contains(stdout, "ClusterCatalog/community-"+e.instance+": breaking") ||
			!strings.Contains(stdout, `ClusterExtension koku-`+e.instance+`: no bundle of package koku-metrics-operator in the new catalog satisfies version range ">=4.4.1"`) {
			t.Fatalf("a ClusterCatalog change the ClusterExtension's range rules out: exit %d\n%s\n%s", code, stdout, stderr)
		}
		cc := e.get(t, gvrClusterCatalog, "", "community-"+e.instance)
		if ref, _, _ := unstructured.NestedString(cc.Object, "spec", "source", "image", "ref"); ref != rendered {
			t.Errorf("the ClusterCatalog moved although breaking: %s", ref)
		}
		if err := e.dyn.Resource(gvrClusterExtension).Delete(context.Background(), "koku-"+e.instance, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		e.spec(t, kokuBothChannels)
		if _, _, code := e.ferry(t, "reconcile", "--wait", "2m"); code != 0 {
			t.Fatalf("back to both channels: exit %d", code)
		}
		rendered = e.renderedImage(t)
	})

	t.Run("held catalog", func(t *testing.T) {
		e.spec(t, kokuBothChannels+"    - name: nfs-provisioner-operator\n")
		broken := breakNewImage(t, e.src, e.work, e.auth)
		stdout, stderr, code := e.ferry(t, "reconcile", "--wait", "2m")
		if code != 1 || e.catalogSourceImage(t) != rendered {
			t.Fatalf("a catalog with an image not mirrored moved in the cluster (exit %d)\n%s\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "CatalogSource/"+e.ns+"/community: held") {
			t.Errorf("the output does not say the CatalogSource was held:\n%s", stdout)
		}
		broken.repair(t)
		if stdout, stderr, code := e.ferry(t, "reconcile", "--wait", "2m"); code != 0 || e.catalogSourceImage(t) == rendered {
			t.Fatalf("after the repair: exit %d\n%s\n%s", code, stdout, stderr)
		}
	})

	t.Run("prune", func(t *testing.T) {
		// Someone else's CatalogSource in the namespace: never Ferry's.
		other := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "operators.coreos.com/v1alpha1", "kind": "CatalogSource",
			"metadata": map[string]any{"name": "hand-made", "namespace": e.ns},
			"spec":     map[string]any{"sourceType": "grpc", "image": "quay.io/x/y@sha256:" + strings.Repeat("a", 64)},
		}}
		if _, err := e.dyn.Resource(gvrCatalogSource).Namespace(e.ns).Create(context.Background(), other, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		subNS, subName := e.subscribe(t, "koku-metrics-operator", "beta", "koku-metrics-operator.v4.4.1", "4.4.1")
		// The catalog's serving objects are no longer rendered.
		writeSpec(t, e.work, fmt.Sprintf("apiVersion: ferry.dev/v1alpha1\nkind: Mirror\nmetadata:\n  name: %s\nspec:\n  registry: %s/ocp\n  additionalImages:\n    - %s\n", e.instance, e.dst.Host, e.w.CatalogTag))
		stdout, _, code := e.ferry(t, "reconcile", "--wait", "2m")
		if code != 0 || !strings.Contains(stdout, "CatalogSource/"+e.ns+"/community: prunable") {
			t.Fatalf("without --prune: exit %d\n%s", code, stdout)
		}
		e.get(t, gvrCatalogSource, e.ns, "community")
		stdout, _, code = e.ferry(t, "reconcile", "--wait", "2m", "--prune")
		if code != 0 || !strings.Contains(stdout, "CatalogSource/"+e.ns+"/community: breaking") || !strings.Contains(stdout, fmt.Sprintf("Subscription %s/%s uses it", subNS, subName)) {
			t.Fatalf("--prune of a CatalogSource in use: exit %d\n%s", code, stdout)
		}
		e.get(t, gvrCatalogSource, e.ns, "community")
		stdout, _, code = e.ferry(t, "reconcile", "--wait", "2m", "--prune", "--allow-breaking")
		if code != 0 {
			t.Fatalf("--prune --allow-breaking: exit %d\n%s", code, stdout)
		}
		if _, err := e.dyn.Resource(gvrCatalogSource).Namespace(e.ns).Get(context.Background(), "community", metav1.GetOptions{}); err == nil {
			t.Error("the CatalogSource Ferry owns was not pruned")
		}
		if _, err := e.dyn.Resource(gvrClusterCatalog).Get(context.Background(), "community-"+e.instance, metav1.GetOptions{}); err == nil {
			t.Error("the ClusterCatalog Ferry owns was not pruned")
		}
		e.get(t, gvrCatalogSource, e.ns, "hand-made")
		// The one image left is by tag: an ImageTagMirrorSet, still
		// rendered, stays; the ImageDigestMirrorSet is no longer rendered
		// and goes.
		if l, err := e.dyn.Resource(gvrITMS).List(context.Background(), metav1.ListOptions{LabelSelector: "ferry.dev/instance=" + e.instance}); err != nil || len(l.Items) == 0 {
			t.Errorf("the mirror set still rendered was pruned: %v", err)
		}
		if l, err := e.dyn.Resource(gvrIDMS).List(context.Background(), metav1.ListOptions{LabelSelector: "ferry.dev/instance=" + e.instance}); err != nil || len(l.Items) != 0 {
			t.Errorf("the mirror set no longer rendered was not pruned: %v", err)
		}
	})
}

// TestClusterSamplesArchitectures: the sample images are mirrored where
// the samples operator will import them and the samples Config is applied
// after them; an architecture change goes Removed -> edit -> Managed, and
// a run killed while the operator removes the samples is resumed by the
// next run, which never leaves samples Removed. The test plays the samples
// operator: it reports the removal done only when told.
func TestClusterSamplesArchitectures(t *testing.T) {
	e := newClusterEnv(t, "kubevirt-wol")
	samplesImage := pushRandomImage(t, e.src, "ubi9/ruby-33:latest")
	if err := os.WriteFile(filepath.Join(e.work, "samples.json"), []byte(fmt.Sprintf(`{"ruby_3.3": "%s/ubi9/ruby-33:latest", "nodejs_20": "%s/ubi9/nodejs-20:latest"}`, e.src.Host, e.src.Host)), 0o644); err != nil {
		t.Fatal(err)
	}
	samples := func(arch string) string {
		return fmt.Sprintf(`---
apiVersion: ferry.dev/v1alpha1
kind: Samples
metadata:
  name: cluster
spec:
  managementState: Managed
  architectures: [%s]
  mirrorImages: true
  imagesFrom: ./samples.json
`, arch)
	}
	// The samples Config is a cluster singleton: this test owns it.
	_ = e.dyn.Resource(gvrSamples).Delete(context.Background(), "cluster", metav1.DeleteOptions{})
	t.Cleanup(func() { _ = e.dyn.Resource(gvrSamples).Delete(context.Background(), "cluster", metav1.DeleteOptions{}) })
	e.spec(t, "    - name: kubevirt-wol\n", samples("x86_64"))
	e.olmPlayer(t)
	stdout, stderr, code := e.ferry(t, "reconcile", "--wait", "1m")
	if code != 0 {
		t.Fatalf("reconcile: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := headDigest(e.dst, "ocp/ubi9/ruby-33:latest"); err != nil {
		t.Errorf("the sample image is not where the operator will import it: %v", err)
	}
	cfg := e.get(t, gvrSamples, "", "cluster")
	skipped, _, _ := unstructured.NestedStringSlice(cfg.Object, "spec", "skippedImagestreams")
	registryField, _, _ := unstructured.NestedString(cfg.Object, "spec", "samplesRegistry")
	if len(skipped) != 1 || skipped[0] != "nodejs" || registryField != e.dst.Host+"/ocp" {
		t.Errorf("samples Config: skippedImagestreams %v (want the stream whose image is missing), samplesRegistry %q", skipped, registryField)
	}
	_ = samplesImage

	// The architecture changes; the run is killed while it waits for the
	// operator to finish the removal.
	e.spec(t, "    - name: kubevirt-wol\n", samples("aarch64"))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int)
	go func() {
		_, _, code := ferryCtx(ctx, append([]string{"reconcile", e.work, "-a", e.auth, "--kubeconfig", e.kubeconfig, "--progress", "never", "--cache-dir", t.TempDir()}, "--wait", "10m")...)
		done <- code
	}()
	for {
		u := e.get(t, gvrSamples, "", "cluster")
		if st, _, _ := unstructured.NestedString(u.Object, "spec", "managementState"); st == "Removed" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code == 0 {
		t.Fatal("the killed run reported success")
	}
	u := e.get(t, gvrSamples, "", "cluster")
	if arch, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "architectures"); len(arch) != 1 || arch[0] != "x86_64" {
		t.Fatalf("architectures changed before the removal was done: %v", arch)
	}
	// The operator finishes the removal; the next run resumes.
	_ = unstructured.SetNestedMap(u.Object, map[string]any{"managementState": "Removed", "conditions": []any{map[string]any{"type": "RemovePending", "status": "False"}}}, "status")
	if _, err := e.dyn.Resource(gvrSamples).UpdateStatus(context.Background(), u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := e.ferry(t, "reconcile", "--wait", "1m"); code != 0 {
		t.Fatalf("resumed run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	u = e.get(t, gvrSamples, "", "cluster")
	st, _, _ := unstructured.NestedString(u.Object, "spec", "managementState")
	arch, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "architectures")
	if st != "Managed" || len(arch) != 1 || arch[0] != "aarch64" {
		t.Errorf("after resuming: %s %v, want Managed with aarch64", st, arch)
	}
}

// TestInitFromCluster: a cluster with Subscriptions and CSVs from a real
// catalog gives a config repository that validates and whose dry-run
// against the same cluster has no breaking change.
func TestInitFromCluster(t *testing.T) {
	e := newClusterEnv(t, "koku-metrics-operator", "kubevirt-wol")
	cs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operators.coreos.com/v1alpha1", "kind": "CatalogSource",
		"metadata": map[string]any{"name": "community", "namespace": e.ns},
		"spec":     map[string]any{"sourceType": "grpc", "image": e.w.CatalogTag, "displayName": "Community"},
	}}
	if _, err := e.dyn.Resource(gvrCatalogSource).Namespace(e.ns).Create(context.Background(), cs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.subscribe(t, "koku-metrics-operator", "alpha", "koku-metrics-operator.v4.4.0", "4.4.0")
	e.subscribe(t, "kubevirt-wol", "stable-v0", "kubevirt-wol.v0.0.2", "0.0.2")
	out := filepath.Join(t.TempDir(), "repo")
	stdout, stderr, code := ferry(t, "init", "--from-cluster", "--kubeconfig", e.kubeconfig, "--registry", e.dst.Host+"/ocp", "-o", out)
	if code != 0 {
		t.Fatalf("init: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The API server is shared and has no controllers to delete what
	// earlier tests left in their namespaces: keep only the Catalog of this
	// test's CatalogSource (the others name registries that are gone).
	entries, err := os.ReadDir(filepath.Join(out, "catalogs"))
	if err != nil {
		t.Fatal(err)
	}
	catalog := ""
	for _, en := range entries {
		p := filepath.Join(out, "catalogs", en.Name())
		if b, _ := os.ReadFile(p); strings.Contains(string(b), "source: "+e.w.CatalogTag) && strings.Contains(string(b), "namespace: "+e.ns) {
			catalog = string(b)
			continue
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("written Catalog:\n%s", catalog)
	for _, want := range []string{"name: koku-metrics-operator", "minVersion: 4.4.0", "name: kubevirt-wol", "source: " + e.w.CatalogTag} {
		if !strings.Contains(catalog, want) {
			t.Errorf("the written Catalog lacks %q", want)
		}
	}
	if stdout, stderr, code := ferry(t, "validate", out); code != 0 {
		t.Fatalf("validate: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = ferry(t, "reconcile", out, "--dry-run", "-a", e.auth, "--kubeconfig", e.kubeconfig)
	if code != 0 || strings.Contains(stdout, "breaking") {
		t.Fatalf("dry-run of the written repository: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// ferryCtx runs the CLI in-process under ctx, as a signal would cancel it.
func ferryCtx(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	root := cli.NewRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	code = cli.ExitCode(root.ExecuteContext(ctx), &errOut)
	return out.String(), errOut.String(), code
}

// headDigest asks reg, with its credentials, for repoTag's digest.
func headDigest(reg *testenv.Registry, repoTag string) (string, error) {
	ref, err := name.ParseReference(reg.Host + "/" + repoTag)
	if err != nil {
		return "", err
	}
	d, err := remote.Head(ref, remote.WithAuth(reg.Auth()))
	if err != nil {
		return "", err
	}
	return d.Digest.String(), nil
}
