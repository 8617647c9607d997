package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

// TestKnownKindsMatchCRDs checks the static table against the real CRDs
// in testdata/crds: each custom kind's plural, scope and a served version.
// (TestKnownKindsMatchServer checks all kinds against a live server.)
func TestKnownKindsMatchCRDs(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "crds")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	type served struct {
		resource   string
		namespaced bool
	}
	crds := map[schema.GroupVersionKind]served{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		crd := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(b, &crd.Object); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		scope, _, _ := unstructured.NestedString(crd.Object, "spec", "scope")
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		for _, v := range versions {
			vm, _ := v.(map[string]any)
			if name, _ := vm["name"].(string); vm["served"] == true {
				crds[schema.GroupVersionKind{Group: group, Version: name, Kind: kind}] = served{plural, scope == "Namespaced"}
			}
		}
	}
	for gvk, m := range knownKinds {
		if gvk.Group == "" {
			continue // core kinds have no CRD
		}
		crd, ok := crds[gvk]
		if !ok {
			t.Errorf("%s: no CRD in testdata/crds serves it", gvk)
			continue
		}
		if m.gvr != gvk.GroupVersion().WithResource(crd.resource) || m.namespaced != crd.namespaced {
			t.Errorf("%s: table says %s namespaced=%v; the CRD says %s namespaced=%v", gvk, m.gvr.Resource, m.namespaced, crd.resource, crd.namespaced)
		}
	}
}
