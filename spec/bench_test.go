package spec

import (
	"os"
	"testing"
)

// BenchmarkLoadExamples measures a whole spec directory load: walk, parse,
// decode, defaults, validation.
func BenchmarkLoadExamples(b *testing.B) {
	fsys := os.DirFS("../examples")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(fsys, DefaultLoadOptions()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadImageSetConfigurations loads the 141 real oc-mirror files as
// one directory (it is invalid as a whole; the cost is what counts).
func BenchmarkLoadImageSetConfigurations(b *testing.B) {
	fsys := os.DirFS("../testdata/oc-mirror/imageset-configs")
	b.ReportAllocs()
	for b.Loop() {
		Load(fsys, LoadOptions{})
	}
}
