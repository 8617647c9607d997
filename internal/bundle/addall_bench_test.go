package bundle

import (
	"os"
	"testing"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// BenchmarkAddAllCommunity adds the next koku-metrics-operator release (no
// replaces, so the edge is inferred) to the whole community v4.20 catalog,
// what every render with spec.bundles now does before filtering: the
// working copy of the catalog's slices is the cost that grows with it.
//
//	go test ./internal/bundle -run '^$' -bench AddAllCommunity -benchmem
func BenchmarkAddAllCommunity(b *testing.B) {
	cfg := loadCatalog(b, extractCatalog(b, communityArchive, "catalogs/v4.20"))
	bundle, p, err := Render(os.DirFS(bundleDir(b, kokuBundle)), "quay.io/example/koku:4.4.2", DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	bundle.Name = "koku-metrics-operator.v4.4.2"
	bundle.Properties[packagePropertyIndex(b, bundle.Properties)].Value = []byte(`{"packageName":"koku-metrics-operator","version":"4.4.2"}`)
	p.Replaces = ""
	b.Logf("%d bundles, %d channels", len(cfg.Bundles), len(cfg.Channels))
	b.ResetTimer()
	for b.Loop() {
		work := *cfg
		edges, err := AddAll(&work, []Addition{{Bundle: bundle, Placement: p}})
		if err != nil || len(edges) == 0 {
			b.Fatalf("edges %v, err %v", edges, err)
		}
	}
}

func packagePropertyIndex(tb testing.TB, props []fbc.Property) int {
	tb.Helper()
	for i, p := range props {
		if p.Type == fbc.PropertyPackage {
			return i
		}
	}
	tb.Fatal("no olm.package property")
	return -1
}
