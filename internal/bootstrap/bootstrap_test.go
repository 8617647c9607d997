package bootstrap

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ferry-gitops/ferry/reconcile"
	"github.com/ferry-gitops/ferry/spec"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fakeReader serves objects by kind; kinds it lacks are not served.
type fakeReader map[schema.GroupVersionKind][]*unstructured.Unstructured

func (f fakeReader) List(_ context.Context, gvk schema.GroupVersionKind) ([]*unstructured.Unstructured, error) {
	items, ok := f[gvk]
	if !ok {
		return nil, fmt.Errorf("%s: %w", gvk.Kind, reconcile.ErrNotServed)
	}
	return items, nil
}

func (f fakeReader) Get(_ context.Context, gvk schema.GroupVersionKind, ns, name string) (*unstructured.Unstructured, error) {
	for _, u := range f[gvk] {
		if u.GetNamespace() == ns && u.GetName() == name {
			return u, nil
		}
	}
	return nil, fmt.Errorf("%s/%s: %w", ns, name, reconcile.ErrNotFound)
}

func obj(gvk schema.GroupVersionKind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: fields}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func TestFromCluster(t *testing.T) {
	cs := func(name, image string) *unstructured.Unstructured {
		return obj(reconcile.GVKCatalogSource, "openshift-marketplace", name, map[string]any{"spec": map[string]any{"image": image, "sourceType": "grpc", "displayName": "Red Hat Operators", "priority": int64(-100)}})
	}
	sub := func(ns, name, pkg, channel, source, installed string) *unstructured.Unstructured {
		s := map[string]any{"name": pkg, "source": source, "sourceNamespace": "openshift-marketplace"}
		if channel != "" {
			s["channel"] = channel
		}
		return obj(reconcile.GVKSubscription, ns, name, map[string]any{"spec": s, "status": map[string]any{"installedCSV": installed}})
	}
	csv := func(ns, name, version string) *unstructured.Unstructured {
		return obj(reconcile.GVKCSV, ns, name, map[string]any{"spec": map[string]any{"version": version}})
	}
	r := fakeReader{
		reconcile.GVKCatalogSource: {cs("redhat-operators", "registry.redhat.io/redhat/redhat-operator-index:v4.20"), cs("lab", "quay.io/lab/catalog:v1")},
		reconcile.GVKSubscription: {
			sub("openshift-logging", "cluster-logging", "cluster-logging", "stable-6.2", "redhat-operators", "cluster-logging.v6.2.1"),
			// two Subscriptions of one package and channel: the lower wins
			sub("team-a", "etcd", "etcd", "stable", "lab", "etcd.v0.9.4"),
			sub("team-b", "etcd", "etcd", "stable", "lab", "etcd.v0.9.2"),
			// no channel: the default one, as a package-level range; the
			// version from the CSV name (no CSV object)
			sub("team-c", "strimzi", "strimzi-kafka-operator", "", "lab", "strimzi-cluster-operator.v0.45.0"),
			sub("team-d", "gone", "gone", "alpha", "deleted-source", "gone.v1.0.0"),
		},
		reconcile.GVKCSV:            {csv("openshift-logging", "cluster-logging.v6.2.1", "6.2.1"), csv("team-a", "etcd.v0.9.4", "0.9.4"), csv("team-b", "etcd.v0.9.2", "0.9.2")},
		reconcile.GVKClusterCatalog: {obj(reconcile.GVKClusterCatalog, "", "operatorhubio", map[string]any{"spec": map[string]any{"source": map[string]any{"type": "Image", "image": map[string]any{"ref": "quay.io/operatorhubio/catalog@sha256:" + strings.Repeat("a", 64)}}}})},
		reconcile.GVKClusterExtension: {obj(reconcile.GVKClusterExtension, "", "argocd", map[string]any{
			"spec":   map[string]any{"source": map[string]any{"sourceType": "Catalog", "catalog": map[string]any{"packageName": "argocd-operator", "channels": []any{"alpha"}}}},
			"status": map[string]any{"install": map[string]any{"bundle": map[string]any{"name": "argocd-operator.v0.13.0", "version": "0.13.0"}}},
		})},
	}
	res, err := FromCluster(t.Context(), r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "Subscription team-d/gone: CatalogSource openshift-marketplace/deleted-source does not exist") {
		t.Errorf("notes: %q", res.Notes)
	}
	// What is written validates as a spec directory.
	fsys := fstest.MapFS{}
	for p, b := range res.Files {
		fsys[p] = &fstest.MapFile{Data: b}
	}
	cfg, err := spec.Load(fsys, spec.DefaultLoadOptions())
	if err != nil {
		var inv *spec.InvalidError
		if errorsAs(err, &inv) {
			t.Fatalf("the written repository is invalid: %v", inv.Problems)
		}
		t.Fatal(err)
	}
	if len(cfg.Catalogs) != 3 || cfg.Mirror == nil || cfg.Mirror.Spec.OperatorHub == nil || !cfg.Mirror.Spec.OperatorHub.DisableAllDefaultSources {
		t.Errorf("config: %d catalogs, mirror %+v", len(cfg.Catalogs), cfg.Mirror)
	}
	var paths []string
	for p := range res.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var got strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&got, "=== %s\n%s", p, res.Files[p])
	}
	golden := filepath.Join("testdata", "from-cluster.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", golden, diff)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
