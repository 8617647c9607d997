package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// SamplesNamespace and SamplesConfigMapName are where the Cluster Samples
// Operator publishes which image each sample imagestream tag imports.
const (
	SamplesNamespace     = "openshift-cluster-samples-operator"
	SamplesConfigMapName = "imagestreamtag-to-image"
)

var configMapGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// SamplesConfigMap plays the Cluster Samples Operator's part in the API
// server: it creates the operator's namespace (its real manifest) and the
// imagestreamtag-to-image ConfigMap the operator publishes there, with the
// data for variant ("ocp-x86_64", "ocp-aarch64", "ocp-ppc64le",
// "ocp-s390x", "okd-x86_64": testdata/cluster-samples-operator/derived).
// It returns the ConfigMap's data, "<stream>_<tag>" -> image.
//
// Both objects are cluster singletons in a real cluster, so they are
// server-side applied (field manager "cluster-samples-operator"): calling
// it again, from any test, converges instead of failing; tests sharing one
// server must agree on the variant.
func (k *Kube) SamplesConfigMap(t testing.TB, variant string) map[string]string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "testdata", "cluster-samples-operator")
	ns := readObject(t, filepath.Join(dir, "manifests", "01-namespace.yaml"))
	cm := readObject(t, filepath.Join(dir, "derived", "imagestreamtag-to-image."+variant+".json"))
	if cm.GetName() != SamplesConfigMapName || cm.GetNamespace() != SamplesNamespace {
		t.Fatalf("samples ConfigMap for %s is %s/%s, want %s/%s", variant, cm.GetNamespace(), cm.GetName(), SamplesNamespace, SamplesConfigMapName)
	}
	opts := metav1.ApplyOptions{FieldManager: "cluster-samples-operator", Force: true}
	if _, err := k.dynamic.Resource(namespaceGVR).Apply(t.Context(), ns.GetName(), ns, opts); err != nil {
		t.Fatalf("apply namespace %s: %v", ns.GetName(), err)
	}
	if _, err := k.dynamic.Resource(configMapGVR).Namespace(SamplesNamespace).Apply(t.Context(), cm.GetName(), cm, opts); err != nil {
		t.Fatalf("apply ConfigMap %s/%s: %v", SamplesNamespace, cm.GetName(), err)
	}
	data, _, err := unstructured.NestedStringMap(cm.Object, "data")
	if err != nil {
		t.Fatalf("samples ConfigMap for %s: %v", variant, err)
	}
	return data
}

// readObject reads one YAML or JSON object from path.
func readObject(t testing.TB, path string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &obj.Object); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if obj.GetKind() == "" || obj.GetName() == "" {
		t.Fatal(fmt.Errorf("%s: not a Kubernetes object (no kind or name)", path))
	}
	return obj
}
