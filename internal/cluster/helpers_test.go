package cluster

import (
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/render"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// skipE2E skips tests that need the real API server when FERRY_SKIP_E2E
// is set (unit runs).
func skipE2E(t testing.TB) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

// fastRetry keeps retries quick in tests; Retry-After is still honoured.
var fastRetry = RetryPolicy{Attempts: 6, Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, Timeout: 10 * time.Second}

// kubeClient returns a Client on the shared API server acting as its own
// user (the test's name), so the audit log tells its requests apart.
func kubeClient(t testing.TB) (*Client, *testenv.Kube, string) {
	t.Helper()
	skipE2E(t)
	kube := testenv.SharedKube(t)
	user := "ferry-test:" + t.Name()
	c, err := New(Options{Config: kube.As(user), Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	return c, kube, user
}

func suffix() string { return strings.ToLower(rand.Text()[:8]) }

func digest(seed string) string {
	return "sha256:" + fmt.Sprintf("%064x", []byte(seed))[:64]
}

func owned(obj *unstructured.Unstructured) *unstructured.Unstructured {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[render.LabelManagedBy] = render.LabelManagedByVal
	labels[render.LabelInstance] = "test"
	obj.SetLabels(labels)
	return obj
}

// catalogSource is a CatalogSource as render writes one.
func catalogSource(ns, name, image string) *unstructured.Unstructured {
	return owned(&unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operators.coreos.com/v1alpha1",
		"kind":       "CatalogSource",
		"metadata": map[string]any{
			"name": name, "namespace": ns,
			"annotations": map[string]any{"ferry.dev/catalog": name},
		},
		"spec": map[string]any{
			"sourceType":     "grpc",
			"image":          image,
			"displayName":    "Ferry " + name,
			"publisher":      "Ferry",
			"updateStrategy": map[string]any{"registryPoll": map[string]any{"interval": "10m0s"}},
			"grpcPodConfig":  map[string]any{"securityContextConfig": "restricted"},
		},
	}})
}

// mirrorSet is an ImageDigestMirrorSet or ImageTagMirrorSet with one
// repository-scoped entry per source.
func mirrorSet(kind, name, mirror string, sources ...string) *unstructured.Unstructured {
	field := "imageDigestMirrors"
	if kind == "ImageTagMirrorSet" {
		field = "imageTagMirrors"
	}
	var entries []any
	for _, s := range sources {
		entries = append(entries, map[string]any{"source": s, "mirrors": []any{mirror + "/" + s[strings.Index(s, "/")+1:]}})
	}
	return owned(&unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "config.openshift.io/v1",
		"kind":       kind,
		"metadata":   map[string]any{"name": name},
		"spec":       map[string]any{field: entries},
	}})
}

func icsp(name, mirror string, sources ...string) *unstructured.Unstructured {
	var entries []any
	for _, s := range sources {
		entries = append(entries, map[string]any{"source": s, "mirrors": []any{mirror + "/" + s[strings.Index(s, "/")+1:]}})
	}
	return owned(&unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operator.openshift.io/v1alpha1",
		"kind":       "ImageContentSourcePolicy",
		"metadata":   map[string]any{"name": name, "labels": map[string]any{"operators.openshift.org/catalog": "true"}},
		"spec":       map[string]any{"repositoryDigestMirrors": entries},
	}})
}

func clusterCatalog(name, image string) *unstructured.Unstructured {
	return owned(&unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "olm.operatorframework.io/v1",
		"kind":       "ClusterCatalog",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"source":           map[string]any{"type": "Image", "image": map[string]any{"ref": image}},
			"priority":         int64(-100),
			"availabilityMode": "Available",
		},
	}})
}

func samplesConfig(name, registry string, skipped ...string) *unstructured.Unstructured {
	sk := []any{}
	for _, s := range skipped {
		sk = append(sk, s)
	}
	return owned(&unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "samples.operator.openshift.io/v1",
		"kind":       "Config",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"managementState":     "Managed",
			"samplesRegistry":     registry,
			"architectures":       []any{"x86_64"},
			"skippedImagestreams": sk,
			// A list of type set: the server owns it element by element.
			"skippedHelmCharts": []any{"redhat-developer-hub", "nodejs-example"},
		},
	}})
}

func operatorHub(name string, disabled ...string) *unstructured.Unstructured {
	var sources []any
	for _, d := range disabled {
		sources = append(sources, map[string]any{"name": d, "disabled": true})
	}
	return owned(&unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "config.openshift.io/v1",
		"kind":       "OperatorHub",
		"metadata":   map[string]any{"name": name},
		"spec":       map[string]any{"disableAllDefaultSources": true, "sources": sources},
	}})
}
