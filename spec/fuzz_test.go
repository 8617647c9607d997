package spec

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary bytes to the loader as one spec file. It must
// never panic, and must either load or explain itself with located
// problems.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/load/*/*.yaml")
	more, _ := filepath.Glob("../examples/*.yaml")
	isc, _ := filepath.Glob("../testdata/oc-mirror/imageset-configs/v1/docs/examples/*.yaml")
	for _, p := range append(append(seeds, more...), isc...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Load(fstest.MapFS{"spec.yaml": {Data: data}}, LoadOptions{})
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var invalid *InvalidError
		if !errors.As(err, &invalid) {
			t.Fatalf("error is not *InvalidError: %v", err)
		}
		if len(invalid.Problems.Errors()) == 0 {
			t.Fatal("InvalidError without an error-severity problem")
		}
		for _, p := range invalid.Problems {
			if p.File != "spec.yaml" || p.Message == "" {
				t.Fatalf("problem without file or message: %#v", p)
			}
		}
	})
}
