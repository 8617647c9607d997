package render

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/spec"
)

func TestCatalogSource(t *testing.T) {
	c := &spec.Catalog{Metadata: spec.ObjectMeta{Name: "certified"}, Spec: spec.CatalogSpec{
		CatalogSource: spec.CatalogSourceSpec{
			Name: "certified-mirror", Namespace: "openshift-marketplace", DisplayName: "Certified (mirrored)",
			Publisher: "Platform team", Priority: -100, PollInterval: "90m", SecurityContextConfig: "restricted",
		},
	}}
	image := "mirror.example.com/olm/certified@sha256:4d3cd9c8ab56b9b73e9a0d0917b12ffeba930461b5a40da2e083b407e8fb4eea"
	got, err := CatalogSource(c, image, Labels("lab"))
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: operators.coreos.com/v1alpha1
kind: CatalogSource
metadata:
  annotations:
    ferry.dev/catalog: certified
  labels:
    app.kubernetes.io/managed-by: ferry
    ferry.dev/instance: lab
  name: certified-mirror
  namespace: openshift-marketplace
spec:
  displayName: Certified (mirrored)
  grpcPodConfig:
    securityContextConfig: restricted
  image: ` + image + `
  priority: -100
  publisher: Platform team
  sourceType: grpc
  updateStrategy:
    registryPoll:
      interval: 1h30m0s
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("CatalogSource (-want +got):\n%s", diff)
	}
	again, _ := CatalogSource(c, image, Labels("lab"))
	if string(again) != string(got) {
		t.Error("same input, different bytes")
	}
	if _, err := CatalogSource(c, "mirror.example.com/olm/certified:v4.20", nil); err == nil || !strings.Contains(err.Error(), "not pinned by digest") {
		t.Errorf("a tag must be refused, got %v", err)
	}
}
