package spec

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
)

// TestRealImageSetConfigurations loads every real oc-mirror file on its own,
// as a user switching from oc-mirror would, and checks that Ferry's schema
// knows every field they use: a file may fail only on a rule (a bad
// reference, oc-mirror's own filter rules) or because it is a Go template,
// never on a field Ferry does not know.
func TestRealImageSetConfigurations(t *testing.T) {
	root := "../testdata/oc-mirror/imageset-configs"
	var files []string
	err := fs.WalkDir(os.DirFS(root), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && isYAML(p) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Files that are oc-mirror's own negative cases or Go templates.
	wantDecodeFailure := map[string]string{
		"internal/e2e/templates/isc_templates/additional_isc.yaml":                     "Go template",
		"internal/e2e/templates/isc_templates/release_isc.yaml":                        "Go template",
		"tests/integration/testdata/imagesetconfigs/exit_codes/isc-generic-error.yaml": "storageConfig",
	}
	var clean, ruleErrors, decodeErrors int
	for _, f := range files {
		data, err := os.ReadFile(path.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Load(fstest.MapFS{path.Base(f): {Data: data}}, LoadOptions{})
		var invalid *InvalidError
		switch {
		case err == nil:
			clean++
		case !errors.As(err, &invalid):
			t.Errorf("%s: unexpected error type: %v", f, err)
		default:
			decode := false
			for _, p := range invalid.Problems.Errors() {
				if p.File != path.Base(f) || p.Line == 0 {
					t.Errorf("%s: problem without file and line: %s", f, p)
				}
				if strings.Contains(p.Message, "unknown field") || strings.Contains(p.Message, "not valid YAML") {
					decode = true
				}
			}
			if decode {
				decodeErrors++
				want, ok := wantDecodeFailure[f]
				if !ok || !strings.Contains(invalid.Error(), want) {
					t.Errorf("%s: schema does not cover the file:\n%v", f, invalid)
				}
			} else {
				ruleErrors++
			}
		}
	}
	t.Logf("%d files: %d load clean, %d load with rule errors, %d fail to decode (expected: %d)", len(files), clean, ruleErrors, decodeErrors, len(wantDecodeFailure))
	if decodeErrors != len(wantDecodeFailure) {
		t.Errorf("decode failures = %d, want %d", decodeErrors, len(wantDecodeFailure))
	}
	if len(files) != 141 {
		t.Errorf("found %d files, want the 141 real ones", len(files))
	}
}

func TestGoTemplateMessage(t *testing.T) {
	data, err := os.ReadFile("../testdata/oc-mirror/imageset-configs/internal/e2e/templates/isc_templates/release_isc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(fstest.MapFS{"isc.yaml": {Data: data}}, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "Go template") {
		t.Fatalf("want a Go template error, got %v", err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
