package world

import (
	"context"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

// The tests in this file judge the world with the real opm (built from
// operator-registry v1.73.0 by hack/tools.sh). Set FERRY_SKIP_E2E to skip
// them where opm cannot be built.

func skipE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

// e2eCatalogs are real catalogs of different shapes: a one-bundle package
// with tag references, certified packages by digest, OKD packages whose
// bundles carry olm.bundle.object (catalogs converted from SQLite), and a
// hand-written catalog of every quirk the world must handle.
var e2eCatalogs = []struct {
	name string
	dir  string
}{
	{"kubevirt-wol", "testdata/fbc/small/community-operators-prod/v4.20/kubevirt-wol"},
	{"community", "testdata/fbc/small/community-operators-prod/v4.20"},
	{"certified", "testdata/fbc/small/certified-operators/v4.20"},
	{"okderators", "testdata/fbc/small/okderators-catalog-index/catalog"},
	{"quirks", "internal/world/testdata/quirks"},
}

// TestOPMRendersWorld pushes each catalog as an FBC image and as a SQLite
// index image, renders both with `opm render`, validates the result with
// `opm validate`, and checks that packages, channels (the whole upgrade
// graph) and bundles survived.
func TestOPMRendersWorld(t *testing.T) {
	skipE2E(t)
	root := testenv.RepoRoot(t)
	testenv.OPM(t) // build or find opm once, before the subtests
	for _, tc := range e2eCatalogs {
		for _, kind := range []struct {
			name  string
			build func(context.Context, fs.FS, Options) (*World, error)
			exact bool // every field must survive, not just the graph
		}{
			{"fbc", Build, true},
			{"sqlite", BuildSQLiteIndex, false},
		} {
			t.Run(tc.name+"/"+kind.name, func(t *testing.T) {
				reg := startRegistry(t)
				opts := DefaultOptions(reg)
				w, err := kind.build(t.Context(), os.DirFS(filepath.Join(root, tc.dir)), opts)
				if err != nil {
					t.Fatal(err)
				}
				// opm normalises some fields (an icon's mediatype, for one), so
				// the reference is opm's own rendering of the catalog files.
				want := render(t, writeDir(t, w.Configs))

				for _, ref := range []string{w.Catalog, w.CatalogTag} {
					got := renderAndValidate(t, ref)
					if diff := cmp.Diff(summarise(want, kind.exact), summarise(got, kind.exact)); diff != "" {
						t.Errorf("opm render %s differs from the catalog (-want +got):\n%s", ref, diff)
					}
				}
			})
		}
	}
}

// TestOPMRendersLargeWorld is TestOPMRendersWorld for the whole
// certified-operators v4.20 catalog (676 bundles, about 5,400 images). It
// takes a few minutes, so it runs only with FERRY_E2E_LARGE set.
func TestOPMRendersLargeWorld(t *testing.T) {
	skipE2E(t)
	if os.Getenv("FERRY_E2E_LARGE") == "" {
		t.Skip("set FERRY_E2E_LARGE to render the certified-operators v4.20 world")
	}
	root := testenv.RepoRoot(t)
	fsys, err := OpenCatalogArchive(filepath.Join(root, "testdata/fbc/large/certified-operators-catalogs-v4.20.tar.gz"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []struct {
		name  string
		build func(context.Context, fs.FS, Options) (*World, error)
		exact bool
	}{
		{"fbc", Build, true},
		{"sqlite", BuildSQLiteIndex, false},
	} {
		t.Run(kind.name, func(t *testing.T) {
			w, err := kind.build(t.Context(), fsys, DefaultOptions(startRegistry(t)))
			if err != nil {
				t.Fatal(err)
			}
			want := summarise(render(t, writeDir(t, w.Configs)), kind.exact)
			got := summarise(renderAndValidate(t, w.Catalog), kind.exact)
			if !kind.exact {
				blurPerChannelSkipRanges(want, got)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("opm render %s differs from the catalog (-want +got):\n%s", w.Catalog, diff)
			}
		})
	}
}

// blurPerChannelSkipRanges hides the skipRange of bundles whose skipRange
// differs between channels in want: SQLite has one skipRange per bundle.
func blurPerChannelSkipRanges(want, got catalogSummary) {
	ranges := map[string]map[string]bool{}
	for key, es := range want.Channels {
		pkg, _, _ := strings.Cut(key, "/")
		for _, e := range es {
			k := pkg + "/" + e.Name
			if ranges[k] == nil {
				ranges[k] = map[string]bool{}
			}
			ranges[k][e.SkipRange] = true
		}
	}
	for _, s := range []catalogSummary{want, got} {
		for key, es := range s.Channels {
			pkg, _, _ := strings.Cut(key, "/")
			for i := range es {
				if len(ranges[pkg+"/"+es[i].Name]) > 1 {
					es[i].SkipRange = "<differs per channel>"
				}
			}
		}
	}
}

// TestOPMRendersBundleImages renders a few of the world's bundle images: opm
// must recognise them as registry+v1 bundles and read back the bundle the
// catalog describes.
func TestOPMRendersBundleImages(t *testing.T) {
	skipE2E(t)
	root := testenv.RepoRoot(t)
	reg := startRegistry(t)
	w, err := Build(t.Context(), os.DirFS(filepath.Join(root, "testdata/fbc/small/certified-operators/v4.20")), DefaultOptions(reg))
	if err != nil {
		t.Fatal(err)
	}
	docs := mustLoad(t, w.Configs)
	checked := 0
	for _, d := range docs {
		if d.schema() != schemaBundle {
			continue
		}
		rendered := render(t, d.str("image"))
		if len(rendered) != 1 || rendered[0].schema() != schemaBundle {
			t.Fatalf("opm render %s: want one bundle, got %d documents", d.str("image"), len(rendered))
		}
		got := rendered[0]
		if got.str("name") != d.str("name") || got.str("package") != d.str("package") || got.str("image") != d.str("image") {
			t.Errorf("opm render %s: got bundle %s/%s image %s, want %s/%s", d.str("image"),
				got.str("package"), got.str("name"), got.str("image"), d.str("package"), d.str("name"))
		}
		if diff := cmp.Diff(propertySet(d, propGVK, propPackage, propGVKRequired), propertySet(got, propGVK, propPackage, propGVKRequired)); diff != "" {
			t.Errorf("opm render %s: properties differ (-catalog +bundle image):\n%s", d.str("image"), diff)
		}
		if diff := cmp.Diff(imageSet(d), imageSet(got)); diff != "" {
			t.Errorf("opm render %s: related images differ (-catalog +bundle image):\n%s", d.str("image"), diff)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no bundles rendered")
	}
}

// TestOPMRendersBundleDir renders an image PushBundleDir built from a real
// bundle directory.
func TestOPMRendersBundleDir(t *testing.T) {
	skipE2E(t)
	root := testenv.RepoRoot(t)
	reg := startRegistry(t)
	ref := reg + "/bundles/koku-metrics-operator:4.4.1"
	if _, err := PushBundleDir(t.Context(), filepath.Join(root, "testdata/bundles/community__koku-metrics-operator__4.4.1"), ref); err != nil {
		t.Fatal(err)
	}
	docs := render(t, ref)
	if len(docs) != 1 || docs[0].str("package") != "koku-metrics-operator" || docs[0].str("name") != "koku-metrics-operator.v4.4.1" {
		t.Fatalf("opm render %s: got %v", ref, docs)
	}
}

// TestSQLiteSchemaMatchesOPM lets opm migrate an empty database to its
// latest schema and compares sqlite_master, statement for statement, with
// the schema the world writes.
func TestSQLiteSchemaMatchesOPM(t *testing.T) {
	skipE2E(t)
	dbPath := filepath.Join(t.TempDir(), "empty.db")
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	// opm only accepts files that look like SQLite databases.
	if _, err := db.Exec("CREATE TABLE x(a); DROP TABLE x"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, stderr, err := testenv.RunOPM(t, "render", dbPath); err != nil {
		t.Fatalf("opm render %s: %v\n%s", dbPath, err, stderr)
	}
	want, wantVersion := readSchema(t, dbPath)

	ours, err := buildIndexDB(t.Context(), &packageIndex{packages: map[string]*pkgInfo{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	oursPath := filepath.Join(t.TempDir(), "ours.db")
	if err := os.WriteFile(oursPath, ours, 0o644); err != nil {
		t.Fatal(err)
	}
	got, gotVersion := readSchema(t, oursPath)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("schema differs from opm's migrated schema (-opm +world):\n%s", diff)
	}
	if gotVersion != wantVersion {
		t.Errorf("schema_migrations version = %d, opm migrates to %d", gotVersion, wantVersion)
	}
}

func readSchema(t *testing.T, path string) ([][4]string, int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][4]string
	for rows.Next() {
		var r [4]string
		if err := rows.Scan(&r[0], &r[1], &r[2], &r[3]); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	var version int
	if err := db.QueryRow("SELECT version FROM schema_migrations").Scan(&version); err != nil {
		t.Fatal(err)
	}
	return out, version
}

// writeDir copies fsys into a temporary directory.
func writeDir(t *testing.T, fsys fs.FS) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, fsys); err != nil {
		t.Fatal(err)
	}
	return dir
}

// render runs `opm render` over plain HTTP and parses its JSON stream.
func render(t *testing.T, ref string) []doc {
	t.Helper()
	stdout, stderr, err := testenv.RunOPM(t, "render", "--use-http", "-o", "json", ref)
	if err != nil {
		t.Fatalf("opm render %s: %v\n%s", ref, err, stderr)
	}
	objs, err := decodeStream([]byte(stdout))
	if err != nil {
		t.Fatalf("parse opm render output: %v", err)
	}
	var docs []doc
	for _, o := range objs {
		docs = append(docs, doc{file: "opm render " + ref, obj: o})
	}
	return docs
}

// renderAndValidate renders ref and runs `opm validate` on the result.
func renderAndValidate(t *testing.T, ref string) []doc {
	t.Helper()
	stdout, stderr, err := testenv.RunOPM(t, "render", "--use-http", "-o", "yaml", ref)
	if err != nil {
		t.Fatalf("opm render %s: %v\n%s", ref, err, stderr)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "catalog.yaml"), []byte(stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := testenv.RunOPM(t, "validate", dir); err != nil {
		t.Fatalf("opm validate (render of %s): %v\n%s", ref, err, stderr)
	}
	docs, err := loadFBC(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// catalogSummary is what must survive a trip through a catalog image: with
// exact set, every field of every document; otherwise the graph, the
// images and the properties SQLite has columns for.
type catalogSummary struct {
	Packages map[string]string         // name -> default channel
	Channels map[string][]entry        // package/channel -> entries by name
	Bundles  map[string]bundleSummary  // package/bundle
	Exact    map[string]map[string]any // schema/package/name -> document, when exact
	Others   map[string]int            // other schemas -> count, when exact
}

type bundleSummary struct {
	Image         string
	RelatedImages []string
	Properties    []string // type=value of graph-relevant properties
}

func summarise(docs []doc, exact bool) catalogSummary {
	s := catalogSummary{
		Packages: map[string]string{},
		Channels: map[string][]entry{},
		Bundles:  map[string]bundleSummary{},
	}
	if exact {
		s.Exact = map[string]map[string]any{}
		s.Others = map[string]int{}
	}
	idx, err := indexFBC(docs)
	if err != nil {
		panic(err)
	}
	for pn, p := range idx.packages {
		s.Packages[pn] = p.defaultChannel
		for cn, c := range p.channels {
			es := append([]entry(nil), c.entries...)
			for i := range es {
				sort.Strings(es[i].Skips)
			}
			sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
			s.Channels[pn+"/"+cn] = es
		}
		for bn, d := range p.bundles {
			related := imageSet(d)
			if !exact && d.str("image") != "" && !contains(related, d.str("image")) {
				// SQLite lists a bundle's own image among its related
				// images whether or not the catalog did.
				related = append(related, d.str("image"))
				sort.Strings(related)
			}
			s.Bundles[pn+"/"+bn] = bundleSummary{
				Image:         d.str("image"),
				RelatedImages: related,
				Properties:    propertySet(d, propGVK, propPackage, propGVKRequired, propPackageRequired, "olm.maxOpenShiftVersion"),
			}
		}
	}
	if exact {
		for _, d := range docs {
			switch d.schema() {
			case schemaPackage, schemaChannel, schemaBundle:
				s.Exact[d.schema()+"/"+d.pkg()+"/"+d.str("name")] = normalise(d.obj)
			default:
				s.Others[d.schema()]++
			}
		}
	}
	return s
}

// normalise sorts the lists opm reorders (properties, relatedImages,
// channel entries) so documents compare by content.
func normalise(o map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range o {
		out[k] = v
	}
	for _, k := range []string{"properties", "relatedImages", "entries"} {
		list, ok := out[k].([]any)
		if !ok {
			continue
		}
		keyed := make([]string, len(list))
		byKey := map[string]any{}
		for i, e := range list {
			j, _ := marshalJSON(e)
			keyed[i] = string(j)
			byKey[string(j)] = e
		}
		sort.Strings(keyed)
		sorted := make([]any, len(list))
		for i, k := range keyed {
			sorted[i] = byKey[k]
		}
		out[k] = sorted
	}
	return out
}

func imageSet(d doc) []string {
	set := map[string]bool{}
	for _, ri := range relatedImages(d) {
		set[ri.Image] = true
	}
	return sortedKeys(set)
}

func propertySet(d doc, types ...string) []string {
	var out []string
	for _, p := range bundleProperties(d) {
		if !contains(types, p.Type) {
			continue
		}
		j, _ := marshalJSON(p.Value)
		out = append(out, p.Type+"="+string(j))
	}
	sort.Strings(out)
	return out
}
