package bundle

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
)

// The tests in this file judge Render and Add with the real opm (built
// from operator-registry v1.73.0 by hack/tools.sh). Set FERRY_SKIP_E2E to
// skip them.

func skipE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

// startRegistry serves go-containerregistry's in-memory registry on
// 127.0.0.1 (plain HTTP: opm needs --use-http).
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// opmRender runs `opm render` and returns its JSON stream as plain values.
func opmRender(t *testing.T, args ...string) []any {
	t.Helper()
	stdout, stderr, err := testenv.RunOPM(t, append([]string{"render", "-o", "json"}, args...)...)
	if err != nil {
		t.Fatalf("opm render %v: %v\n%s", args, err, stderr)
	}
	var docs []any
	dec := json.NewDecoder(strings.NewReader(stdout))
	for {
		var d any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("parse opm render output: %v", err)
		}
		docs = append(docs, d)
	}
	return docs
}

var realBundles = []string{kokuBundle, tempoBundle, strimziBundle}

// quirksDir is a synthetic bundle made of the corner cases of opm's bundle
// parser (see testdata/quirks).
const quirksDir = "testdata/quirks"

// TestOPMRendersBundlesLikeRender packs each real bundle directory into a
// bundle image, renders it with `opm render` (with and without the
// bundle-object-to-csv-metadata migration) and requires Render's blob to be
// the same, field for field; likewise for the directory itself, which opm
// renders with an empty image.
func TestOPMRendersBundlesLikeRender(t *testing.T) {
	skipE2E(t)
	testenv.OPM(t)
	reg := startRegistry(t)
	for _, dir := range append(slices.Clone(realBundles), quirksDir) {
		path := bundleDir(t, dir)
		if dir == quirksDir {
			path = quirksDir
		}
		ref := reg + "/bundles/" + strings.ToLower(strings.ReplaceAll(filepath.Base(dir), "__", "-")) + ":v1"
		if _, err := world.PushBundleDir(t.Context(), path, ref); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name  string
			ref   string // "" renders the directory
			opts  Options
			flags []string
		}{
			{"image", ref, Options{Migration: MigrationNone}, []string{"--use-http"}},
			{"image-csv-metadata", ref, Options{Migration: MigrationCSVMetadata}, []string{"--use-http", "--migrate-level", string(MigrationCSVMetadata)}},
			{"directory", "", Options{Migration: MigrationNone}, nil},
			// opm migrates only bundles with an image: a directory keeps its objects.
			{"directory-csv-metadata", "", Options{Migration: MigrationCSVMetadata}, []string{"--migrate-level", string(MigrationCSVMetadata)}},
		} {
			t.Run(filepath.Base(dir)+"/"+tc.name, func(t *testing.T) {
				target := tc.ref
				if target == "" {
					target = path
				}
				docs := opmRender(t, append(tc.flags, target)...)
				if len(docs) != 1 {
					t.Fatalf("opm render %s: %d documents, want 1", target, len(docs))
				}
				got, _, err := Render(os.DirFS(path), tc.ref, tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(docs[0], tree(t, got)); diff != "" {
					t.Errorf("Render differs from opm render %s (-opm +ferry):\n%s", target, diff)
				}
			})
		}
	}
}

// writeCatalog writes cfg with fbc.WriteDir (one <package>/catalog.yaml
// per package, as opm writes them).
func writeCatalog(t *testing.T, cfg *fbc.DeclarativeConfig) string {
	t.Helper()
	dir := t.TempDir()
	if err := fbc.WriteDir(t.Context(), dir, cfg, fbc.DefaultWriteOptions()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// opmValidate runs `opm validate` on a catalog directory.
func opmValidate(t *testing.T, dir string) error {
	t.Helper()
	_, stderr, err := testenv.RunOPM(t, "validate", dir)
	if err != nil {
		return errors.New(strings.TrimSpace(stderr))
	}
	return nil
}

// TestOPMValidatesAddedBundles adds the real bundles to the real community
// v4.20 catalog (koku-metrics-operator.v4.4.1 after taking it out, tempo
// and strimzi as new packages), writes the catalog and runs `opm
// validate`; then checks that opm reads back the bundles Add wrote.
func TestOPMValidatesAddedBundles(t *testing.T) {
	skipE2E(t)
	cfg := loadCatalog(t, extractCatalog(t, communityArchive, "catalogs/v4.20"))
	removeBundle(cfg, "koku-metrics-operator", "koku-metrics-operator.v4.4.1")
	images := map[string]string{
		kokuBundle:    "quay.io/community-operator-pipeline-prod/koku-metrics-operator:4.4.1",
		tempoBundle:   "quay.io/example/tempo-operator-bundle:v0.22.0",
		strimziBundle: "quay.io/example/strimzi-kafka-operator-bundle:1.2.0",
	}
	var added []fbc.Bundle
	for _, dir := range realBundles {
		b, p, err := Render(os.DirFS(bundleDir(t, dir)), images[dir], DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		if dir == strimziBundle {
			p.DefaultChannel = "strimzi-1.x" // its annotation names a channel it is not in
		}
		if err := Add(cfg, b, p); err != nil {
			t.Fatal(err)
		}
		added = append(added, b)
	}
	if err := fbc.Validate(cfg); err != nil {
		t.Errorf("fbc.Validate rejects the catalog with the added bundles: %v", err)
	}
	dir := writeCatalog(t, cfg)
	if err := opmValidate(t, dir); err != nil {
		t.Fatalf("opm validate rejects the catalog with the added bundles:\n%s", err)
	}

	rendered := opmRender(t, dir)
	for _, b := range added {
		i := slices.IndexFunc(rendered, func(d any) bool {
			m, _ := d.(map[string]any)
			return m["schema"] == fbc.SchemaBundle && m["name"] == b.Name && m["package"] == b.Package
		})
		if i < 0 {
			t.Errorf("opm render of the catalog has no bundle %s", b.Name)
			continue
		}
		if diff := cmp.Diff(rendered[i], tree(t, b)); diff != "" {
			t.Errorf("opm reads bundle %s back differently (-opm +ferry):\n%s", b.Name, diff)
		}
	}
}

// TestOPMRejectsWhatAddRefuses forces into the koku-metrics-operator
// package the bundles Add refuses and checks that `opm validate` rejects
// the result as well, so Add's rules are opm's.
func TestOPMRejectsWhatAddRefuses(t *testing.T) {
	skipE2E(t)
	const pkg = "koku-metrics-operator"
	koku, kp, err := Render(os.DirFS(bundleDir(t, kokuBundle)), "example.com/koku:4.4.1", DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		keep    bool // keep the original 4.4.1 in the catalog
		bundle  func(fbc.Bundle) fbc.Bundle
		place   func(Placement) Placement
		wantErr error
	}{
		{"two heads", false, nil, func(p Placement) Placement { p.Replaces = "koku-metrics-operator.v4.3.1"; return p }, ErrGraphConflict},
		{"stranded", false, nil, func(p Placement) Placement {
			p.Replaces, p.Skips = "", []string{"koku-metrics-operator.v4.4.0"}
			return p
		}, ErrGraphConflict},
		{"duplicate version", true, func(b fbc.Bundle) fbc.Bundle { b.Name = "koku-metrics-operator.v4.4.1-again"; return b }, nil, ErrDuplicateVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadCatalog(t, extractCatalog(t, communityArchive, "catalogs/v4.20/"+pkg))
			b, p := koku, kp
			if !tc.keep {
				removeBundle(cfg, pkg, b.Name)
			}
			if tc.bundle != nil {
				b = tc.bundle(b)
			}
			if tc.place != nil {
				p = tc.place(p)
			}
			if err := Add(cfg, b, p); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Add: got %v, want %v", err, tc.wantErr)
			} else {
				t.Logf("Add: %v", err)
			}
			forceAdd(cfg, b, p)
			if err := fbc.Validate(cfg); err == nil {
				t.Error("fbc.Validate accepts the catalog Add refused")
			}
			err := opmValidate(t, writeCatalog(t, cfg))
			if err == nil {
				t.Fatal("opm validate accepts the catalog Add refused")
			}
			t.Logf("opm validate: %v", err)
		})
	}
}

// forceAdd inserts a bundle and its entries without any check.
func forceAdd(cfg *fbc.DeclarativeConfig, b fbc.Bundle, p Placement) {
	cfg.Bundles = append(cfg.Bundles, b)
	for i, c := range cfg.Channels {
		if c.Package == b.Package && slices.Contains(p.Channels, c.Name) {
			cfg.Channels[i].Entries = append(slices.Clone(c.Entries), fbc.ChannelEntry{Name: b.Name, Replaces: p.Replaces, Skips: p.Skips, SkipRange: p.SkipRange})
		}
	}
}

// TestOPMRendersWorldBundlesLikeRender renders every bundle image the world
// builder makes from real catalogs (okderators' bundles carry their real
// manifests; certified ones are rebuilt from CSV metadata) with one `opm
// render` call and compares each with Render over the unpacked image.
func TestOPMRendersWorldBundlesLikeRender(t *testing.T) {
	skipE2E(t)
	root := testenv.RepoRoot(t)
	testenv.OPM(t)
	for _, tc := range []struct{ name, dir, archive string }{
		{"okderators", "testdata/fbc/small/okderators-catalog-index/catalog", ""},
		{"certified", "testdata/fbc/small/certified-operators/v4.20", ""},
		{"community", "testdata/fbc/small/community-operators-prod/v4.20", ""},
		// every bundle of the catalog; only with FERRY_E2E_LARGE (a minute or two)
		{"certified-v4.20-large", "", "testdata/fbc/large/certified-operators-catalogs-v4.20.tar.gz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := os.DirFS(filepath.Join(root, tc.dir))
			if tc.archive != "" {
				if os.Getenv("FERRY_E2E_LARGE") == "" {
					t.Skip("set FERRY_E2E_LARGE to render every bundle of " + tc.archive)
				}
				var err error
				if fsys, err = world.OpenCatalogArchive(filepath.Join(root, tc.archive), t.TempDir()); err != nil {
					t.Fatal(err)
				}
			}
			reg := startRegistry(t)
			w, err := world.Build(t.Context(), fsys, world.DefaultOptions(reg))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := fbc.LoadFS(t.Context(), w.Configs)
			if err != nil {
				t.Fatal(err)
			}
			var refs []string
			for _, b := range cfg.Bundles {
				refs = append(refs, b.Image)
			}
			rendered := map[string]any{}
			for _, d := range opmRender(t, append([]string{"--use-http"}, refs...)...) {
				m := d.(map[string]any)
				rendered[m["image"].(string)] = d
			}
			for _, ref := range refs {
				got, _, err := Render(unpack(t, ref), ref, Options{Migration: MigrationNone})
				if err != nil {
					t.Errorf("Render %s: %v", ref, err)
					continue
				}
				if diff := cmp.Diff(rendered[ref], tree(t, got)); diff != "" {
					t.Errorf("Render differs from opm render %s (-opm +ferry):\n%s", ref, diff)
				}
			}
			t.Logf("%d bundle images compared", len(refs))
		})
	}
}

// unpack pulls an image and returns its flattened file system.
func unpack(t *testing.T, ref string) fs.FS {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	fsys := fstest.MapFS{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		fsys[strings.TrimPrefix(path.Clean("/"+h.Name), "/")] = &fstest.MapFile{Data: data, Mode: 0o644}
	}
	return fsys
}
