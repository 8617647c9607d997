package catalogimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type entry struct {
	name     string
	body     string
	typeflag byte
	size     int64 // overrides len(body) in the header when set
}

func layer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typeflag, Size: int64(len(e.body))}
		if e.typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeDir || h.Typeflag == tar.TypeSymlink {
			h.Size = 0
			h.Linkname = e.body
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, e.body)
		}
	}
	tw.Close()
	raw := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func image(t *testing.T, labels map[string]string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Labels = labels
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func files(t *testing.T, fsys fs.FS) map[string]string {
	t.Helper()
	out := map[string]string{}
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			b, _ := fs.ReadFile(fsys, p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

var fbcLabel = map[string]string{LabelConfigs: "/configs"}

func TestReadAppliesWhiteouts(t *testing.T) {
	base := layer(t,
		entry{name: "bin/opm", body: "binary"},
		entry{name: "configs/a/catalog.yaml", body: "a-old"},
		entry{name: "configs/gone/catalog.yaml", body: "gone"},
		entry{name: "configs/opaque/old.yaml", body: "hidden by opaque"},
	)
	top := layer(t,
		entry{name: "configs/a/catalog.yaml", body: "a-new"},
		entry{name: "configs/.wh.gone", body: ""},
		entry{name: "configs/opaque/.wh..wh..opq", body: ""},
		entry{name: "configs/opaque/new.yaml", body: "same layer as the opaque marker"},
	)
	c, err := read(t, image(t, fbcLabel, base, top), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a/catalog.yaml": "a-new", "opaque/new.yaml": "same layer as the opaque marker"}
	if diff := cmp.Diff(want, files(t, c.FS)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if c.Format != FormatFBC || c.Dir != "/configs" {
		t.Errorf("format %s dir %s", c.Format, c.Dir)
	}
	if diff := cmp.Diff([]int{1}, c.CatalogLayers); diff != "" {
		t.Errorf("catalog-only layers (-want +got):\n%s", diff)
	}
}

func TestReadRefusesUnsafeEntries(t *testing.T) {
	limits := Limits{MaxFileBytes: 10, MaxTotalBytes: 15, MaxFiles: 3}
	for _, tc := range []struct {
		name    string
		entries []entry
		reason  string
	}{
		{"path traversal", []entry{{name: "../../etc/passwd", body: "x"}}, "leaves the image root"},
		{"traversal inside configs", []entry{{name: "configs/../../x", body: "x"}}, "leaves the image root"},
		{"symlink", []entry{{name: "configs/p/catalog.yaml", body: "/etc/shadow", typeflag: tar.TypeSymlink}}, "links"},
		{"oversized file", []entry{{name: "configs/p/catalog.yaml", body: "01234567890"}}, "file limit"},
		{"oversized total", []entry{{name: "configs/a.yaml", body: "0123456789"}, {name: "configs/b.yaml", body: "0123456789"}}, "exceeds 15 bytes"},
		{"too many files", []entry{{name: "configs/1", body: "1"}, {name: "configs/2", body: "2"}, {name: "configs/3", body: "3"}, {name: "configs/4", body: "4"}}, "more than 3 files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := read(t, image(t, fbcLabel, layer(t, tc.entries...)), limits)
			var unsafe *UnsafeEntryError
			if !errors.As(err, &unsafe) {
				t.Fatalf("want UnsafeEntryError, got %v", err)
			}
			if !bytes.Contains([]byte(unsafe.Reason), []byte(tc.reason)) {
				t.Errorf("reason %q lacks %q", unsafe.Reason, tc.reason)
			}
		})
	}
}

func TestReadSQLiteAndErrors(t *testing.T) {
	img := image(t, map[string]string{LabelDatabase: "/database/index.db"}, layer(t, entry{name: "database/index.db", body: "SQLite format 3"}))
	c, err := read(t, img, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if c.Format != FormatSQLite || files(t, c.FS)["index.db"] != "SQLite format 3" {
		t.Errorf("got %s %v", c.Format, files(t, c.FS))
	}
	if _, err := read(t, image(t, nil, layer(t, entry{name: "x", body: "y"})), DefaultLimits()); !errors.Is(err, ErrNotCatalog) {
		t.Errorf("unlabelled image: got %v, want ErrNotCatalog", err)
	}
	if _, err := read(t, image(t, fbcLabel, layer(t, entry{name: "elsewhere/x", body: "y"})), DefaultLimits()); err == nil {
		t.Error("label naming an empty directory was accepted")
	}
}

func TestBuildRoundTripAndDeterminism(t *testing.T) {
	opmLayer := layer(t, entry{name: "bin/opm", body: "binary"})
	oldConfigs := layer(t, entry{name: "configs/old/catalog.yaml", body: "old"})
	cache := layer(t, entry{name: "tmp/cache/digest", body: "stale cache"})
	source := image(t, map[string]string{LabelConfigs: "/configs", "keep": "me"}, opmLayer, oldConfigs, cache)
	configs := fstest.MapFS{
		"b/catalog.yaml": {Data: []byte("b")},
		"a/catalog.yaml": {Data: []byte("a")},
	}
	built, err := Build(t.Context(), source, configs, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Build(t.Context(), source, configs, BuildOptions{})
	d1, _ := built.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("same input, different digests: %s %s", d1, d2)
	}
	layers, _ := built.Layers()
	if len(layers) != 2 {
		t.Errorf("got %d layers, want the opm layer plus configs (catalog-only layers dropped)", len(layers))
	}
	c, err := read(t, built, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"a/catalog.yaml": "a", "b/catalog.yaml": "b"}, files(t, c.FS)); diff != "" {
		t.Errorf("configs (-want +got):\n%s", diff)
	}
	cf, _ := built.ConfigFile()
	if diff := cmp.Diff([]string{"serve", "/configs", "--cache-dir=/tmp/cache", "--cache-enforce-integrity=false"}, cf.Config.Cmd); diff != "" {
		t.Errorf("cmd: %s", diff)
	}
	if cf.Config.Labels["keep"] != "me" || cf.Config.Labels[LabelConfigs] != "/configs" {
		t.Errorf("labels %v", cf.Config.Labels)
	}
	// Keeping catalog layers still hides the stale configs and cache.
	kept, err := Build(t.Context(), source, configs, BuildOptions{KeepCatalogLayers: true})
	if err != nil {
		t.Fatal(err)
	}
	if ls, _ := kept.Layers(); len(ls) != 4 {
		t.Errorf("kept %d layers, want 4", len(ls))
	}
	c, err = read(t, kept, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files(t, c.FS)["old/catalog.yaml"]; ok {
		t.Error("old configs visible through the opaque whiteout")
	}
	flat := files(t, mustFlatten(t, kept))
	if _, ok := flat["tmp/cache/digest"]; ok {
		t.Error("stale opm cache survives the rebuild")
	}
}

func TestBuildIndex(t *testing.T) {
	idx, err := random.Index(64, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	out, err := BuildIndex(t.Context(), idx, fstest.MapFS{"p/catalog.yaml": {Data: []byte("p")}}, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	im, _ := out.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("got %d children, want 2", len(im.Manifests))
	}
	for _, d := range im.Manifests {
		img, _ := out.Image(d.Digest)
		if _, err := read(t, img, DefaultLimits()); err != nil {
			t.Errorf("child %s: %v", d.Digest, err)
		}
	}
}

// mustFlatten returns the whole filesystem of an image, whiteouts applied.
func mustFlatten(t *testing.T, img v1.Image) fs.FS {
	t.Helper()
	tree, err := ReadDirs(t.Context(), img, ReadOptions{Limits: DefaultLimits(), TempDir: t.TempDir()}, "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	return tree.FS
}

// read is Read into the test's temporary directory, closed at its end.
func read(t *testing.T, img v1.Image, limits Limits) (*Contents, error) {
	t.Helper()
	c, err := Read(t.Context(), img, ReadOptions{Limits: limits, TempDir: t.TempDir()})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}
