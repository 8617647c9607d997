package mirror

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fakeDigest stands in for a registry's answer: a digest derived from the
// text, so tests are deterministic without a registry.
func fakeDigest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// resolveAll answers every tag reference of in with fakeDigest, as a
// caller's resolver would.
func resolveAll(t testing.TB, in Input) map[string]string {
	t.Helper()
	refs, err := Unresolved(in)
	if err != nil {
		t.Fatalf("unresolved: %v", err)
	}
	out := map[string]string{}
	for _, r := range refs {
		out[r] = fakeDigest("resolved " + r)
	}
	return out
}

// goldenFile compares got with testdata/name, or rewrites it under
// -update. A nil got means the file must not exist.
func goldenFile(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if got == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			return
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if got == nil {
		if err == nil {
			t.Errorf("%s exists but nothing was rendered for it (run go test -run %s -update)", path, t.Name())
		}
		return
	}
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (run go test -run %s -update and review the diff):\n%s", path, t.Name(), firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, w, g)
		}
	}
	return "(same lines, different bytes)"
}

func loadDir(t testing.TB, dir string) *fbc.DeclarativeConfig {
	t.Helper()
	cfg, err := fbc.LoadFS(context.Background(), os.DirFS(dir))
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return cfg
}

var largeCatalogs sync.Map // name -> *largeLoad

type largeLoad struct {
	once sync.Once
	cfg  *fbc.DeclarativeConfig
}

// largeCatalog extracts testdata/fbc/large/<name>.tar.gz and loads it once
// per test binary.
func largeCatalog(t testing.TB, name string) *fbc.DeclarativeConfig {
	t.Helper()
	v, _ := largeCatalogs.LoadOrStore(name, &largeLoad{})
	l := v.(*largeLoad)
	l.once.Do(func() {
		dir, err := os.MkdirTemp("", "ferry-mirror-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		extractTarGz(t, filepath.Join(testenv.RepoRoot(t), "testdata", "fbc", "large", name+".tar.gz"), dir)
		matches, _ := filepath.Glob(filepath.Join(dir, "catalogs", "*"))
		if len(matches) != 1 {
			t.Fatalf("want one catalogs/<version> directory in %s, found %v", name, matches)
		}
		l.cfg = loadDir(t, matches[0])
	})
	if l.cfg == nil {
		t.Fatalf("loading %s failed earlier", name)
	}
	return l.cfg
}

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
			if _, err := io.Copy(out, tr); err != nil {
				out.Close()
				t.Fatal(err)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
