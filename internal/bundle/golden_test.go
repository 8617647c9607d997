package bundle

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the current output")

// TestRenderGolden renders bundles and compares the result with
// testdata/<case>.golden.yaml (regenerate with -update and review the
// diff). TestOPMRendersBundlesLikeRender holds the same renderings against
// opm itself; these goldens keep them checked where opm is not available.
// Bundle objects are shown decoded so that a diff is readable; the bytes
// are what opm would base64-encode.
func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dir   string
		image string
		opts  Options
		// brief leaves out olm.csv.metadata and bundle objects.
		brief bool
	}{
		{"quirks", quirksDir, "quay.io/example/quirks-bundle:v1.2.3", Options{Migration: MigrationNone}, false},
		{"quirks-csv-metadata", quirksDir, "quay.io/example/quirks-bundle:v1.2.3", DefaultOptions(), false},
		{"quirks-directory", quirksDir, "", DefaultOptions(), false},
		{"tempo", bundleDir(t, tempoBundle), "quay.io/example/tempo-operator-bundle:v0.22.0", DefaultOptions(), true},
		{"strimzi", bundleDir(t, strimziBundle), "quay.io/example/strimzi-bundle:1.2.0", DefaultOptions(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, p, err := Render(os.DirFS(tc.dir), tc.image, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := yaml.Marshal(map[string]any{"bundle": readable(t, b, tc.brief), "placement": p})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-golden +got):\n%s", path, diff)
			}
		})
	}
}

// readable turns b into plain values with each olm.bundle.object's data
// decoded into a string.
func readable(t *testing.T, b fbc.Bundle, brief bool) any {
	t.Helper()
	var props []any
	for _, p := range b.Properties {
		switch {
		case brief && (p.Type == typeBundleObject || p.Type == typeCSVMetadata):
			props = append(props, map[string]any{"type": p.Type, "value": "(left out)"})
		case p.Type == typeBundleObject:
			var v struct {
				Data []byte `json:"data"`
			}
			if err := json.Unmarshal(p.Value, &v); err != nil {
				t.Fatal(err)
			}
			props = append(props, map[string]any{"type": p.Type, "data": string(v.Data)})
		default:
			props = append(props, tree(t, p))
		}
	}
	return map[string]any{
		"name":          b.Name,
		"package":       b.Package,
		"image":         b.Image,
		"properties":    props,
		"relatedImages": b.RelatedImages,
	}
}
