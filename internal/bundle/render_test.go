package bundle

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// TestRenderMatchesCommunityCatalog renders the real koku-metrics-operator
// 4.4.1 bundle with the image reference the community catalog records and
// requires the very olm.bundle blob the v4.20 catalog carries for it:
// name, package, image, every property (olm.csv.metadata included, field
// by field) in the same order, and the related images.
func TestRenderMatchesCommunityCatalog(t *testing.T) {
	cfg := loadCatalog(t, extractCatalog(t, communityArchive, "catalogs/v4.20/koku-metrics-operator"))
	want, ok := findBundle(cfg, "koku-metrics-operator", "koku-metrics-operator.v4.4.1")
	if !ok {
		t.Fatal("the catalog has no koku-metrics-operator.v4.4.1")
	}
	got, _, err := Render(os.DirFS(bundleDir(t, kokuBundle)), want.Image, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tree(t, want), tree(t, got)); diff != "" {
		t.Errorf("rendered bundle differs from the catalog's (-catalog +rendered):\n%s", diff)
	}
}

func TestRenderPlacement(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want Placement
	}{
		{kokuBundle, Placement{
			Package:        "koku-metrics-operator",
			Channels:       []string{"alpha", "beta"},
			DefaultChannel: "beta",
			Replaces:       "koku-metrics-operator.v4.4.0",
		}},
		{tempoBundle, Placement{
			Package:  "tempo-operator", // a semver-mode package: no edges in the CSV
			Channels: []string{"alpha"},
		}},
		{strimziBundle, Placement{
			Package:        "strimzi-kafka-operator",
			Channels:       []string{"strimzi-1.x", "strimzi-1.2.x"},
			DefaultChannel: "stable",
			Replaces:       "strimzi-cluster-operator.v1.1.0",
		}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			_, got, err := Render(os.DirFS(bundleDir(t, tc.dir)), "example.com/b:1", DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			got.Icon = nil // checked below
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("placement (-want +got):\n%s", diff)
			}
		})
	}
}

var _ = fbc.SchemaBundle
