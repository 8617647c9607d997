package bundle

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// repoRoot is the module root, found from this file's location so unit
// tests need nothing from the environment.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// bundleDir is a real bundle under testdata/bundles.
func bundleDir(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "testdata", "bundles", name)
}

// Real bundles under testdata/bundles.
const (
	kokuBundle    = "community__koku-metrics-operator__4.4.1"
	tempoBundle   = "community__tempo-operator__0.22.0"
	strimziBundle = "community__strimzi-kafka-operator__1.2.0"
)

// communityArchive is the community-operators v4.20 catalog.
const communityArchive = "testdata/fbc/large/community-operators-prod-catalogs-v4.20.tar.gz"

// extractCatalog reads the regular files under prefix (a directory inside
// the archive) out of a .tar.gz catalog into memory, with prefix removed
// from their names.
func extractCatalog(t testing.TB, archive, prefix string) fstest.MapFS {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), archive))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	fsys := fstest.MapFS{}
	prefix = strings.TrimSuffix(prefix, "/") + "/"
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", archive, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(name, prefix) {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		fsys[strings.TrimPrefix(name, prefix)] = &fstest.MapFile{Data: data, Mode: 0o644}
	}
	if len(fsys) == 0 {
		t.Fatalf("%s has no files under %s", archive, prefix)
	}
	return fsys
}

// loadCatalog loads a catalog with fbc.LoadFS.
func loadCatalog(t testing.TB, fsys fstest.MapFS) *fbc.DeclarativeConfig {
	t.Helper()
	cfg, err := fbc.LoadFS(t.Context(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// tree turns v into plain JSON values (maps, slices, strings, float64), so
// that property values compare by content, not by bytes.
func tree(t testing.TB, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// findBundle returns the bundle named name of package pkg.
func findBundle(cfg *fbc.DeclarativeConfig, pkg, name string) (fbc.Bundle, bool) {
	for _, b := range cfg.Bundles {
		if b.Package == pkg && b.Name == name {
			return b, true
		}
	}
	return fbc.Bundle{}, false
}

func dirFS(dir string) fs.FS { return os.DirFS(dir) }
