package spec

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// ociCatalogLine finds an operators[] entry whose catalog is an OCI layout
// (commented-out lines do not count).
var ociCatalogLine = regexp.MustCompile(`(?m)^[ \t]*-?[ \t]*catalog:[ \t]*"?oci://`)

// placeholders are the words oc-mirror's test suites replace before use
// (a temporary directory, a registry namespace).
var placeholders = []string{"DATA_TMP", "OCI_REGISTRY_NAMESPACE"}

// TestRealOCICatalogConfigurations loads every real oc-mirror file that
// names a catalog as oci://DIR: each must load as it would with a
// registry catalog, into a Catalog whose source and base are the layout.
// The only errors allowed name one of oc-mirror's test placeholders
// (a relative DATA_TMP layout that is not there, an OCI_REGISTRY_NAMESPACE
// that is no repository name). Delete configurations load too, with no
// Catalog: Ferry deletes by omission.
func TestRealOCICatalogConfigurations(t *testing.T) {
	root := "../testdata/oc-mirror/imageset-configs"
	var files []string
	err := fs.WalkDir(os.DirFS(root), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isYAML(p) {
			return err
		}
		data, err := os.ReadFile(path.Join(root, p))
		if err == nil && ociCatalogLine.Match(data) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, f := range files {
		data, err := os.ReadFile(path.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(fstest.MapFS{path.Base(f): {Data: data}}, LoadOptions{})
		var invalid *InvalidError
		switch {
		case err == nil:
			n := 0
			for _, c := range cfg.Catalogs {
				if IsOCISource(c.Spec.Source) {
					n++
					if c.Spec.Base != c.Spec.Source {
						t.Errorf("%s: Catalog/%s: base %q, want the layout itself", f, c.Metadata.Name, c.Spec.Base)
					}
				}
			}
			if n == 0 && !strings.Contains(string(data), KindDeleteImageSetConfiguration) {
				t.Errorf("%s: no Catalog with an oci:// source", f)
			}
		case errors.As(err, &invalid):
			for _, p := range invalid.Problems.Errors() {
				if slices.ContainsFunc(placeholders, func(w string) bool { return strings.Contains(p.Message, w) }) {
					found++
					continue
				}
				t.Errorf("%s: %s", f, p)
			}
		default:
			t.Errorf("%s: %v", f, err)
		}
	}
	t.Logf("%d files with an oci:// catalog; %d problems name a placeholder", len(files), found)
	if len(files) != 20 || found != 3 {
		t.Errorf("found %d files and %d placeholder problems, want the 20 real files and their 3 placeholders", len(files), found)
	}
}
