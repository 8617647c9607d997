package render

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/spec"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestClusterObjects renders each cluster object Ferry owns besides the
// CatalogSource and compares it with its golden file under testdata/.
func TestClusterObjects(t *testing.T) {
	image := "mirror.example.com/olm/certified@sha256:4d3cd9c8ab56b9b73e9a0d0917b12ffeba930461b5a40da2e083b407e8fb4eea"
	catalog := &spec.Catalog{Metadata: spec.ObjectMeta{Name: "certified"}, Spec: spec.CatalogSpec{
		ClusterCatalog: spec.ClusterCatalogSpec{Name: "certified-mirror", Priority: -100, AvailabilityMode: "Available"},
	}}
	samples := &spec.SamplesSpec{
		ManagementState: spec.Managed, SamplesRegistry: "mirror.example.com/olm", Architectures: []string{"x86_64"},
		SkippedImagestreams: []string{"jenkins", "fuse7-java-openshift"}, SkippedTemplates: []string{"jenkins-ephemeral"},
	}
	labels := Labels("lab")
	for _, tc := range []struct {
		name   string
		render func() ([]byte, error)
	}{
		{"clustercatalog", func() ([]byte, error) { return ClusterCatalog(catalog, image, labels) }},
		{"operatorhub", func() ([]byte, error) {
			return OperatorHub(&spec.OperatorHubSpec{DisableAllDefaultSources: true, Sources: []spec.OperatorHubSource{{Name: "community-operators", Disabled: false}}}, labels)
		}},
		// Streams whose images could not be mirrored join the skipped
		// ones, sorted, once each.
		{"samples-config", func() ([]byte, error) {
			return SamplesConfig(samples, []string{"ruby", "fuse7-java-openshift"}, labels)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.render()
			if err != nil {
				t.Fatal(err)
			}
			again, _ := tc.render()
			if string(again) != string(got) {
				t.Error("same input, different bytes")
			}
			golden := filepath.Join("testdata", tc.name+".golden.yaml")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", golden, diff)
			}
		})
	}
	if _, err := ClusterCatalog(catalog, "mirror.example.com/olm/certified:v4.20", labels); err == nil || !strings.Contains(err.Error(), "not pinned by digest") {
		t.Errorf("a tag must be refused, got %v", err)
	}
}
