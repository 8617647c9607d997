package e2e

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

var (
	catalogSourceGVR = schema.GroupVersionResource{Group: "operators.coreos.com", Version: "v1alpha1", Resource: "catalogsources"}
	idmsGVR          = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "imagedigestmirrorsets"}
)

func TestKubeValidatesCatalogSource(t *testing.T) {
	t.Parallel()
	kube := testenv.SharedKube(t)
	ns := kube.NewNamespace(t)
	client := kube.Dynamic().Resource(catalogSourceGVR).Namespace(ns)

	tests := []struct {
		name string
		// securityContextConfig is an enum (legacy, restricted) in the
		// CatalogSource CRD; only the API server's schema validation can
		// refuse other values.
		securityContextConfig string
		wantInvalid           string // field named in the Invalid error; "" means accepted
	}{
		{name: "restricted", securityContextConfig: "restricted"},
		{name: "legacy", securityContextConfig: "legacy"},
		{name: "bogus", securityContextConfig: "bogus", wantInvalid: "spec.grpcPodConfig.securityContextConfig"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := map[string]any{
				"sourceType":    "grpc",
				"image":         "registry.example.com/ferry/catalog:v4.20",
				"displayName":   "Ferry test catalog",
				"grpcPodConfig": map[string]any{"securityContextConfig": tc.securityContextConfig},
			}
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "operators.coreos.com/v1alpha1",
				"kind":       "CatalogSource",
				"metadata":   map[string]any{"name": "catalog-" + tc.name, "namespace": ns},
				"spec":       spec,
			}}
			created, err := client.Create(t.Context(), obj, metav1.CreateOptions{})
			if tc.wantInvalid != "" {
				if !apierrors.IsInvalid(err) {
					t.Fatalf("create: got error %v, want Invalid", err)
				}
				if !strings.Contains(err.Error(), tc.wantInvalid) {
					t.Errorf("Invalid error does not name %s: %v", tc.wantInvalid, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			got, err := client.Get(t.Context(), created.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if diff := cmp.Diff(spec, got.Object["spec"]); diff != "" {
				t.Errorf("stored spec differs (-sent +stored):\n%s", diff)
			}
		})
	}
}

func TestKubeValidatesImageDigestMirrorSet(t *testing.T) {
	t.Parallel()
	kube := testenv.SharedKube(t)
	// Cluster-scoped, and the API server is shared: keep names unique.
	suffix := strings.ToLower(rand.Text()[:8])
	client := kube.Dynamic().Resource(idmsGVR)

	tests := []struct {
		name        string
		source      string
		wantInvalid string
	}{
		{name: "valid", source: "registry.redhat.io/redhat"},
		// The CRD's pattern forbids upper case in repository paths.
		{name: "bad-source", source: "registry.redhat.io/RedHat", wantInvalid: "spec.imageDigestMirrors[0].source"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "config.openshift.io/v1",
				"kind":       "ImageDigestMirrorSet",
				"metadata":   map[string]any{"name": "ferry-" + tc.name + "-" + suffix},
				"spec": map[string]any{"imageDigestMirrors": []any{map[string]any{
					"source":             tc.source,
					"mirrors":            []any{"mirror.example.com:5000/redhat"},
					"mirrorSourcePolicy": "NeverContactSource",
				}}},
			}}
			_, err := client.Create(t.Context(), obj, metav1.CreateOptions{})
			if tc.wantInvalid == "" {
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				return
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create: got error %v, want Invalid", err)
			}
			if !strings.Contains(err.Error(), tc.wantInvalid) {
				t.Errorf("Invalid error does not name %s: %v", tc.wantInvalid, err)
			}
		})
	}
}

func TestKubeAccess(t *testing.T) {
	t.Parallel()
	kube := testenv.SharedKube(t)
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

	t.Run("kubeconfig reaches the server as admin", func(t *testing.T) {
		config, err := clientcmd.BuildConfigFromFlags("", kube.Kubeconfig)
		if err != nil {
			t.Fatalf("load %s: %v", kube.Kubeconfig, err)
		}
		client, err := dynamic.NewForConfig(config)
		if err != nil {
			t.Fatal(err)
		}
		const name = "catalogsources.operators.coreos.com"
		if _, err := client.Resource(crds).Get(t.Context(), name, metav1.GetOptions{}); err != nil {
			t.Errorf("get CRD %s through the kubeconfig: %v", name, err)
		}
	})

	t.Run("anonymous is forbidden", func(t *testing.T) {
		config := kube.RESTConfig()
		config.BearerToken = ""
		client, err := dynamic.NewForConfig(config)
		if err != nil {
			t.Fatal(err)
		}
		// RBAC grants system:anonymous only discovery and health; an
		// AlwaysAllow server would answer this list.
		_, err = client.Resource(crds).List(t.Context(), metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("anonymous list CRDs: got %v, want Forbidden", err)
		}
	})
}
