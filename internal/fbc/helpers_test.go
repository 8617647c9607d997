package fbc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Test catalogs live in the repository's testdata/fbc.
const testdataFBC = "../../testdata/fbc"

// largeCatalog names the four real catalogs shipped as tarballs.
type largeCatalog struct {
	Name string // e.g. certified-operators-v4.20
	Dir  string // extracted catalogs/v4.XX directory
}

var (
	largeOnce sync.Once
	largeDirs []largeCatalog
	largeErr  error
	largeTmp  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if largeTmp != "" {
		os.RemoveAll(largeTmp)
	}
	os.Exit(code)
}

// largeCatalogs extracts testdata/fbc/large/*.tar.gz once per test binary.
func largeCatalogs(tb testing.TB) []largeCatalog {
	tb.Helper()
	largeOnce.Do(func() {
		largeTmp, largeErr = os.MkdirTemp("", "fbc-large-")
		if largeErr != nil {
			return
		}
		tarballs, _ := filepath.Glob(filepath.Join(testdataFBC, "large", "*.tar.gz"))
		sort.Strings(tarballs)
		for _, tb := range tarballs {
			name := strings.TrimSuffix(filepath.Base(tb), ".tar.gz")
			name = strings.Replace(name, "-catalogs-", "-", 1)
			dir := filepath.Join(largeTmp, name)
			if largeErr = extractTarGz(tb, dir); largeErr != nil {
				return
			}
			subs, _ := filepath.Glob(filepath.Join(dir, "catalogs", "v*"))
			if len(subs) != 1 {
				largeErr = fmt.Errorf("%s: want one catalogs/v* directory, got %v", tb, subs)
				return
			}
			largeDirs = append(largeDirs, largeCatalog{Name: name, Dir: subs[0]})
		}
		if len(largeDirs) == 0 {
			largeErr = errors.New("no testdata/fbc/large/*.tar.gz")
		}
	})
	if largeErr != nil {
		tb.Fatal(largeErr)
	}
	return largeDirs
}

// extractTarGz unpacks regular files and directories of a .tar.gz into dir.
func extractTarGz(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(target, filepath.Clean(dir)+string(filepath.Separator)) {
			return fmt.Errorf("%s: entry %q escapes the target", file, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.Create(target)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// smallCatalogs lists the catalog directories under testdata/fbc that opm
// accepts (checked by the e2e test), for round trips.
func smallCatalogs(tb testing.TB) []string {
	tb.Helper()
	var dirs []string
	for _, glob := range []string{
		"small/*/*",
		"upstream-testdata/oc-mirror-v1-operator-diff/index-declcfgs/*",
		"upstream-testdata/oc-mirror-v1-operator-diff/list-index",
		"upstream-testdata/oc-mirror-v1-operator-diff/foo-index-v0.2.0-declcfg",
		"upstream-testdata/operator-registry/alpha/action/testdata/index-declcfgs/*",
		"upstream-testdata/operator-registry/alpha/action/testdata/list-index",
		"upstream-testdata/operator-registry/alpha/action/testdata/foo-index-v0.2.0-declcfg",
		"upstream-testdata/operator-registry/fbc-dir/file-based-catalog",
		"templates-and-rendered/*/rendered/*",
	} {
		m, err := filepath.Glob(filepath.Join(testdataFBC, glob))
		if err != nil {
			tb.Fatal(err)
		}
		for _, d := range m {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				dirs = append(dirs, d)
			}
		}
	}
	if len(dirs) < 10 {
		tb.Fatalf("found only %d small catalogs under %s", len(dirs), testdataFBC)
	}
	return dirs
}

// referenceLoad loads a catalog the way opm's declcfg.LoadFS does, one file
// and one document at a time: apimachinery's YAMLOrJSONDecoder, declcfg
// Meta's map round trip, then encoding/json into the blob types. It is the
// oracle for the fast loader.
func referenceLoad(fsys fs.FS) (*DeclarativeConfig, error) {
	files, _, err := catalogFiles(fsys)
	if err != nil {
		return nil, err
	}
	var all blobs
	for _, name := range files {
		f, err := fsys.Open(name)
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		if err := referenceStream(data, &all); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return merge([]blobs{all}), nil
}

type refMeta struct {
	schema, pkg, name string
	blob              []byte
}

func (m *refMeta) UnmarshalJSON(b []byte) error {
	var mm map[string]any
	if err := json.Unmarshal(b, &mm); err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(mm); err != nil {
		return err
	}
	m.blob = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	for k, v := range mm {
		var dst *string
		switch strings.ToLower(k) {
		case "schema":
			dst = &m.schema
		case "package":
			dst = &m.pkg
		case "name":
			dst = &m.name
		default:
			continue
		}
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("key %q is not a string", k)
		}
		*dst = s
	}
	return nil
}

func referenceStream(data []byte, out *blobs) error {
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m refMeta
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var err error
		switch m.schema {
		case "":
			return errMissingSchema
		case SchemaPackage:
			var p Package
			err = json.Unmarshal(m.blob, &p)
			out.Packages = append(out.Packages, p)
		case SchemaChannel:
			var c Channel
			err = json.Unmarshal(m.blob, &c)
			out.Channels = append(out.Channels, c)
		case SchemaBundle:
			var b Bundle
			err = json.Unmarshal(m.blob, &b)
			out.Bundles = append(out.Bundles, b)
		case SchemaDeprecations:
			var d Deprecation
			err = json.Unmarshal(m.blob, &d)
			out.Deprecations = append(out.Deprecations, d)
		default:
			out.Others = append(out.Others, Meta{Schema: m.schema, Package: m.pkg, Name: m.name, Blob: m.blob})
		}
		if err != nil {
			return err
		}
	}
}

func mustLoadDir(tb testing.TB, dir string) *DeclarativeConfig {
	tb.Helper()
	cfg, err := LoadFS(tb.Context(), os.DirFS(dir))
	if err != nil {
		tb.Fatalf("LoadFS(%s): %v", dir, err)
	}
	return cfg
}
