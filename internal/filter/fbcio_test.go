package filter

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// Catalogs are read with fbc.LoadFS, the loader the product uses. Writing
// is a stand-in until internal/fbc has its writer: one JSON document per
// blob, the layout opm reads, which is all opm validate needs.

// loadFS reads the catalog rooted at fsys.
func loadFS(t testing.TB, fsys fs.FS) *fbc.DeclarativeConfig {
	t.Helper()
	cfg, err := fbc.LoadFS(context.Background(), fsys)
	if err != nil {
		t.Fatalf("load catalog: %v", err)
	}
	return cfg
}

// writeDir writes cfg as dir/<package>/catalog.json (package-less blobs in
// dir/catalog.json), one JSON document per blob, the layout opm reads.
func writeDir(t testing.TB, dir string, cfg *fbc.DeclarativeConfig) {
	t.Helper()
	files := map[string]*bytes.Buffer{}
	add := func(pkg string, v any) {
		name := filepath.Join(dir, "catalog.json")
		if pkg != "" {
			name = filepath.Join(dir, pkg, "catalog.json")
		}
		if files[name] == nil {
			files[name] = &bytes.Buffer{}
		}
		var data []byte
		var err error
		if raw, ok := v.(json.RawMessage); ok {
			data = raw
		} else if data, err = json.Marshal(v); err != nil {
			t.Fatalf("marshal: %v", err)
		}
		files[name].Write(data)
		files[name].WriteByte('\n')
	}
	for _, v := range cfg.Packages {
		add(v.Name, v)
	}
	for _, v := range cfg.Channels {
		add(v.Package, v)
	}
	for _, v := range cfg.Bundles {
		add(v.Package, v)
	}
	for _, v := range cfg.Deprecations {
		add(v.Package, v)
	}
	for _, v := range cfg.Others {
		add(v.Package, v.Blob)
	}
	for name, buf := range files {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// extractTarGz unpacks a .tar.gz of catalog files into dir, refusing
// anything but plain files and directories inside dir.
func extractTarGz(t testing.TB, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", archive, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) {
			t.Fatalf("%s: entry %q leaves the target directory", archive, h.Name)
		}
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := os.Create(target)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, io.LimitReader(tr, 256<<20)); err != nil {
				t.Fatal(err)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: entry %q is not a plain file or directory", archive, h.Name)
		}
	}
}

// catalogDir returns the single catalogs/<version> directory of an
// extracted tarball.
func catalogDir(t testing.TB, root string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(root, "catalogs", "*"))
	if err != nil || len(matches) != 1 {
		t.Fatalf("expected one catalogs/<version> directory under %s, found %v (%v)", root, matches, err)
	}
	return matches[0]
}

func trimLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("... (%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, "\n")
}
