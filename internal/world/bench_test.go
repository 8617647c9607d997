package world

import (
	"path/filepath"
	"testing"
)

// BenchmarkBuildCertified builds the certified-operators v4.20 world (676
// bundles, about 5,400 distinct images) into an in-process registry, the
// size Ferry's end-to-end runs and `make bench` use. Run with
// -benchtime=1x; -layer sizes stay at their defaults.
func BenchmarkBuildCertified(b *testing.B) {
	root := repoRoot(b)
	fsys, err := OpenCatalogArchive(filepath.Join(root, "testdata/fbc/large/certified-operators-catalogs-v4.20.tar.gz"), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	var w *World
	for b.Loop() {
		reg := startRegistry(b)
		if w, err = Build(b.Context(), fsys, DefaultOptions(reg)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(w.Stats.Images), "images")
	b.ReportMetric(float64(w.Stats.Manifests), "manifests")
	b.ReportMetric(float64(w.Stats.Blobs), "blobs")
	b.ReportMetric(float64(w.Stats.Bytes)/(1<<20), "MiB")
}
