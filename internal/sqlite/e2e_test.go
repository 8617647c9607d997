package sqlite

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/catalogimage"
	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
)

// The tests in this file judge Load with the real opm (built from
// operator-registry v1.73.0 by hack/tools.sh). Set FERRY_SKIP_E2E to skip
// them.

func skipE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// e2eCatalogs are real catalogs of different shapes, pushed as SQLite
// index images.
var e2eCatalogs = []struct{ name, dir string }{
	{"kubevirt-wol", "testdata/fbc/small/community-operators-prod/v4.20/kubevirt-wol"},
	{"okderators", "testdata/fbc/small/okderators-catalog-index/catalog"},
	{"community", "testdata/fbc/small/community-operators-prod/v4.20"},
	{"certified", "testdata/fbc/small/certified-operators/v4.20"},
	{"quirks", "internal/world/testdata/quirks"},
}

// TestLoadMatchesOPMRender builds a SQLite index image of each catalog,
// renders it with `opm render`, extracts its index.db, loads that with Load
// and requires the same catalog: every package, channel (entries with their
// replaces, skips and skipRange) and bundle (image, properties in order,
// related images), field for field.
func TestLoadMatchesOPMRender(t *testing.T) {
	skipE2E(t)
	root := testenv.RepoRoot(t)
	testenv.OPM(t)
	for _, tc := range e2eCatalogs {
		t.Run(tc.name, func(t *testing.T) {
			reg := startRegistry(t)
			w, err := world.BuildSQLiteIndex(t.Context(), os.DirFS(filepath.Join(root, tc.dir)), world.DefaultOptions(reg))
			if err != nil {
				t.Fatal(err)
			}
			want := opmRender(t, "--use-http", w.Catalog)

			dbPath := extractIndexDB(t, w.Catalog)
			cfg, err := Load(t.Context(), dbPath)
			if err != nil {
				t.Fatal(err)
			}
			got := blobs(t, cfg)
			if len(want) == 0 || len(got) == 0 {
				t.Fatalf("empty rendering: opm %d blobs, Load %d", len(want), len(got))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Load differs from opm render %s (-opm +ferry):\n%s", w.Catalog, diff)
			}
			t.Logf("%d blobs identical", len(got))
		})
	}
}

// TestLoadMatchesOPMRenderLarge is TestLoadMatchesOPMRender for the whole
// certified-operators v4.20 catalog (676 bundles). It takes a minute or
// two, so it runs only with FERRY_E2E_LARGE set.
func TestLoadMatchesOPMRenderLarge(t *testing.T) {
	skipE2E(t)
	if os.Getenv("FERRY_E2E_LARGE") == "" {
		t.Skip("set FERRY_E2E_LARGE to load the certified-operators v4.20 index")
	}
	root := testenv.RepoRoot(t)
	fsys, err := world.OpenCatalogArchive(filepath.Join(root, "testdata/fbc/large/certified-operators-catalogs-v4.20.tar.gz"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := world.BuildSQLiteIndex(t.Context(), fsys, world.DefaultOptions(startRegistry(t)))
	if err != nil {
		t.Fatal(err)
	}
	want := opmRender(t, "--use-http", w.Catalog)
	cfg, err := Load(t.Context(), extractIndexDB(t, w.Catalog))
	if err != nil {
		t.Fatal(err)
	}
	got := blobs(t, cfg)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load differs from opm render %s (-opm +ferry):\n%s", w.Catalog, diff)
	}
	t.Logf("%d blobs identical", len(got))
}

// extractIndexDB pulls a SQLite index image and writes its database to a
// file, as a caller of Load does.
func extractIndexDB(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalogimage.Read(t.Context(), img, catalogimage.ReadOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Format != catalogimage.FormatSQLite {
		t.Fatalf("%s is a %s catalog image, not SQLite", ref, c.Format)
	}
	data, err := fs.ReadFile(c.FS, "index.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "index.db")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// opmRender runs `opm render -o json` and keys its blobs by
// schema/package/name.
func opmRender(t *testing.T, args ...string) map[string]any {
	t.Helper()
	stdout, stderr, err := testenv.RunOPM(t, append([]string{"render", "-o", "json"}, args...)...)
	if err != nil {
		t.Fatalf("opm render %v: %v\n%s", args, err, stderr)
	}
	out := map[string]any{}
	dec := json.NewDecoder(strings.NewReader(stdout))
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("parse opm render output: %v", err)
		}
		out[blobKey(d)] = d
	}
	return out
}

func blobKey(d map[string]any) string {
	pkg, _ := d["package"].(string)
	if d["schema"] == fbc.SchemaPackage {
		pkg, _ = d["name"].(string)
	}
	return fmt.Sprintf("%v/%s/%v", d["schema"], pkg, d["name"])
}

// blobs keys cfg's blobs like opmRender.
func blobs(t *testing.T, cfg *fbc.DeclarativeConfig) map[string]any {
	t.Helper()
	out := map[string]any{}
	add := func(v any) {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		out[blobKey(d)] = d
	}
	for _, p := range cfg.Packages {
		add(p)
	}
	for _, c := range cfg.Channels {
		add(c)
	}
	for _, b := range cfg.Bundles {
		add(b)
	}
	return out
}

// TestOPMAgreesOnVariations renders the hand-built databases of TestLoad
// and TestLoadVariations with `opm render` (a copy each: opm migrates what
// it reads) and requires the same outcome: the same catalog, or an error
// from both.
func TestOPMAgreesOnVariations(t *testing.T) {
	skipE2E(t)
	testenv.OPM(t)
	cases := append([]struct {
		name    string
		stmts   []string
		wantErr string
		check   func(t *testing.T, cfg *fbc.DeclarativeConfig)
	}{{name: "base"}}, variations...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeDB(t, schema, base, tc.stmts)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			opmPath := filepath.Join(t.TempDir(), "opm.db")
			if err := os.WriteFile(opmPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, loadErr := Load(t.Context(), path)
			stdout, stderr, opmErr := testenv.RunOPM(t, "render", "-o", "json", opmPath)
			switch {
			case loadErr != nil && opmErr != nil:
				t.Logf("both fail\n  Load: %v\n  opm: %s", loadErr, lastLine(stderr))
			case loadErr != nil:
				t.Fatalf("Load fails (%v), opm render succeeds:\n%s", loadErr, stdout)
			case opmErr != nil:
				t.Fatalf("opm render fails (%s), Load succeeds", lastLine(stderr))
			default:
				want := opmRender(t, opmPath)
				if diff := cmp.Diff(want, blobs(t, cfg)); diff != "" {
					t.Errorf("Load differs from opm render (-opm +ferry):\n%s", diff)
				}
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
