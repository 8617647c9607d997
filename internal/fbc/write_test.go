package fbc

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sigsyaml "sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite golden files")

// referenceWrite is opm's declcfg.WriteYAML / WriteJSON (writeToEncoder):
// packages by name; per package the olm.package blobs, channels and bundles
// by name, others by schema, deprecations; then package-less others. Each
// blob goes through encoding/json, and for YAML through
// sigs.k8s.io/yaml.JSONToYAML behind a "---" line.
func referenceWrite(cfg *DeclarativeConfig, format Format) ([]byte, error) {
	type pkg struct {
		p []Package
		c []Channel
		b []Bundle
		o []Meta
		d []Deprecation
	}
	pkgs := map[string]*pkg{}
	get := func(n string) *pkg {
		if pkgs[n] == nil {
			pkgs[n] = &pkg{}
		}
		return pkgs[n]
	}
	for _, p := range cfg.Packages {
		get(p.Name).p = append(get(p.Name).p, p)
	}
	for _, c := range cfg.Channels {
		get(c.Package).c = append(get(c.Package).c, c)
	}
	for _, b := range cfg.Bundles {
		get(b.Package).b = append(get(b.Package).b, b)
	}
	var rootOthers []Meta
	for _, o := range cfg.Others {
		if o.Package == "" {
			rootOthers = append(rootOthers, o)
			continue
		}
		get(o.Package).o = append(get(o.Package).o, o)
	}
	for _, d := range cfg.Deprecations {
		get(d.Package).d = append(get(d.Package).d, d)
	}
	var names []string
	for n := range pkgs {
		names = append(names, n)
	}
	sort.Strings(names)

	var out bytes.Buffer
	encode := func(v any) error {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if format == FormatJSON {
			enc.SetIndent("", "    ")
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
		if format == FormatJSON {
			out.Write(buf.Bytes())
			return nil
		}
		y, err := sigsyaml.JSONToYAML(buf.Bytes())
		if err != nil {
			return err
		}
		out.WriteString("---\n")
		out.Write(y)
		return nil
	}
	for _, n := range names {
		p := pkgs[n]
		sort.SliceStable(p.c, func(i, j int) bool { return p.c[i].Name < p.c[j].Name })
		sort.SliceStable(p.b, func(i, j int) bool { return p.b[i].Name < p.b[j].Name })
		sort.SliceStable(p.o, func(i, j int) bool { return p.o[i].Schema < p.o[j].Schema })
		var blobs []any
		for _, v := range p.p {
			blobs = append(blobs, v)
		}
		for _, v := range p.c {
			blobs = append(blobs, v)
		}
		for _, v := range p.b {
			blobs = append(blobs, v)
		}
		for _, v := range p.o {
			blobs = append(blobs, v)
		}
		for _, v := range p.d {
			blobs = append(blobs, v)
		}
		for _, b := range blobs {
			if err := encode(b); err != nil {
				return nil, err
			}
		}
	}
	for _, o := range rootOthers {
		if err := encode(o); err != nil {
			return nil, err
		}
	}
	return out.Bytes(), nil
}

// firstDiff describes where two outputs part.
func firstDiff(got, want []byte) string {
	n := 0
	for n < len(got) && n < len(want) && got[n] == want[n] {
		n++
	}
	from := max(0, n-300)
	return fmt.Sprintf("first difference at byte %d (line %d)\n got: %q\nwant: %q", n, bytes.Count(want[:n], []byte("\n"))+1,
		got[from:min(len(got), n+200)], want[from:min(len(want), n+200)])
}

func allCatalogDirs(t *testing.T) []string {
	dirs := smallCatalogs(t)
	for _, lc := range largeCatalogs(t) {
		dirs = append(dirs, lc.Dir)
	}
	return dirs
}

// TestWriteMatchesOpm requires WriteYAML and WriteJSON to produce, byte for
// byte, what opm's writers produce for every real catalog.
func TestWriteMatchesOpm(t *testing.T) {
	for _, dir := range allCatalogDirs(t) {
		cfg := mustLoadDir(t, dir)
		for _, format := range []Format{FormatYAML, FormatJSON} {
			t.Run(filepath.Base(dir)+"/"+string(format), func(t *testing.T) {
				want, err := referenceWrite(cfg, format)
				if err != nil {
					t.Fatal(err)
				}
				var got bytes.Buffer
				if format == FormatYAML {
					err = WriteYAML(&got, cfg)
				} else {
					err = WriteJSON(&got, cfg)
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Errorf("%s output differs from opm's writer in %s: %s", format, dir, firstDiff(got.Bytes(), want))
				}
			})
		}
	}
}

// TestRoundTrip: load -> write (both formats) -> load gives the same
// catalog, and writing again gives the same bytes.
func TestRoundTrip(t *testing.T) {
	for _, dir := range allCatalogDirs(t) {
		for _, format := range []Format{FormatYAML, FormatJSON} {
			t.Run(filepath.Base(dir)+"/"+string(format), func(t *testing.T) {
				ctx := context.Background()
				cfg := mustLoadDir(t, dir)
				out := t.TempDir()
				if err := WriteDir(ctx, out, cfg, WriteOptions{Format: format}); err != nil {
					t.Fatal(err)
				}
				again := mustLoadDir(t, out)
				if !reflect.DeepEqual(sortedCopy(cfg), again) {
					t.Fatalf("catalog changed in a round trip (-before +after):\n%s", cmp.Diff(sortedCopy(cfg), again))
				}
				var first, second MapWriter
				if err := WriteFS(ctx, &first, cfg, WriteOptions{Format: format}); err != nil {
					t.Fatal(err)
				}
				if err := WriteFS(ctx, &second, again, WriteOptions{Format: format}); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(first.Files, second.Files) {
					t.Errorf("rewriting the reloaded catalog changed the files")
				}
			})
		}
	}
}

// sortedCopy is cfg in the order LoadFS reads back what WriteDir wrote.
func sortedCopy(cfg *DeclarativeConfig) *DeclarativeConfig {
	var m MapWriter
	if err := WriteFS(context.Background(), &m, cfg, DefaultWriteOptions()); err != nil {
		panic(err)
	}
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	// fs.WalkDir order: element by element ("a/x" before "a-b/x").
	sort.Slice(names, func(i, j int) bool {
		return slices.Compare(strings.Split(names[i], "/"), strings.Split(names[j], "/")) < 0
	})
	var all blobs
	for _, n := range names {
		var d decoder
		if err := d.parseBytes(m.Files[n], &all); err != nil {
			panic(err)
		}
	}
	return merge([]blobs{all})
}

// TestWriteDeterministic: the bytes do not depend on the order blobs come
// in or on concurrency.
func TestWriteDeterministic(t *testing.T) {
	cfg := mustLoadDir(t, filepath.Join(testdataFBC, "small", "okderators-catalog-index", "catalog"))
	var want bytes.Buffer
	if err := WriteYAML(&want, cfg); err != nil {
		t.Fatal(err)
	}
	shuffled := *cfg
	shuffled.Packages = reversed(cfg.Packages)
	shuffled.Channels = reversed(cfg.Channels)
	shuffled.Bundles = reversed(cfg.Bundles)
	for range 3 {
		var got bytes.Buffer
		if err := WriteYAML(&got, &shuffled); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("output depends on input order: %s", firstDiff(got.Bytes(), want.Bytes()))
		}
	}
}

func reversed[T any](s []T) []T {
	out := make([]T, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// TestWriteGolden pins the written files of a small catalog.
func TestWriteGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  string
	}{
		{"community-small", filepath.Join(testdataFBC, "small", "community-operators-prod", "v4.20")},
		{"declcfg-latest", filepath.Join(testdataFBC, "upstream-testdata", "operator-registry", "alpha", "action", "testdata", "index-declcfgs", "latest")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustLoadDir(t, tc.dir)
			var m MapWriter
			if err := WriteFS(context.Background(), &m, cfg, DefaultWriteOptions()); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			names := make([]string, 0, len(m.Files))
			for n := range m.Files {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(&got, "### %s\n", n)
				got.Write(m.Files[n])
			}
			golden := filepath.Join("testdata", tc.name+".golden.yaml")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("written files differ from %s (run with -update if intended): %s", golden, firstDiff(got.Bytes(), want))
			}
		})
	}
}

// TestWriteDirPrunes: rewriting a smaller catalog removes the stale package
// files and keeps unrelated ones.
func TestWriteDirPrunes(t *testing.T) {
	ctx := context.Background()
	cfg := mustLoadDir(t, filepath.Join(testdataFBC, "small", "community-operators-prod", "v4.20"))
	dir := t.TempDir()
	if err := WriteDir(ctx, dir, cfg, DefaultWriteOptions()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	keep := cfg.Packages[0].Name
	small := filterPackages(cfg, func(name string) bool { return name == keep })
	if err := WriteDir(ctx, dir, small, WriteOptions{Format: FormatJSON}); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	want := []string{"README.md", keep, keep + "/catalog.json"}
	sort.Strings(want)
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("files after rewrite (-want +got):\n%s", diff)
	}
}

func filterPackages(cfg *DeclarativeConfig, keep func(string) bool) *DeclarativeConfig {
	out := &DeclarativeConfig{}
	for _, p := range cfg.Packages {
		if keep(p.Name) {
			out.Packages = append(out.Packages, p)
		}
	}
	for _, c := range cfg.Channels {
		if keep(c.Package) {
			out.Channels = append(out.Channels, c)
		}
	}
	for _, b := range cfg.Bundles {
		if keep(b.Package) {
			out.Bundles = append(out.Bundles, b)
		}
	}
	for _, d := range cfg.Deprecations {
		if keep(d.Package) {
			out.Deprecations = append(out.Deprecations, d)
		}
	}
	for _, o := range cfg.Others {
		if keep(o.Package) {
			out.Others = append(out.Others, o)
		}
	}
	return out
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  DeclarativeConfig
		want string
	}{
		{"bundle without package", DeclarativeConfig{Bundles: []Bundle{{Schema: SchemaBundle, Name: "b"}}}, "no package name"},
		{"package name with slash", DeclarativeConfig{Packages: []Package{{Schema: SchemaPackage, Name: "a/b"}}}, "single path element"},
		{"invalid raw value", DeclarativeConfig{Packages: []Package{{Schema: SchemaPackage, Name: "a", Properties: []Property{{Type: "x", Value: json.RawMessage("{nope")}}}}}, "invalid character"},
		{"empty raw value", DeclarativeConfig{Packages: []Package{{Schema: SchemaPackage, Name: "a", Properties: []Property{{Type: "x", Value: json.RawMessage{}}}}}}, "unexpected end of JSON input"},
	} {
		for _, format := range []Format{FormatYAML, FormatJSON} {
			t.Run(tc.name+"/"+string(format), func(t *testing.T) {
				var buf bytes.Buffer
				err := writeStream(&buf, &tc.cfg, format)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("got error %v, want one containing %q", err, tc.want)
				}
			})
		}
	}
}

// TestWriteFastPathCoverage checks that real catalogs rarely need the
// reference encoders; if this fails the fast emitters lost coverage.
func TestWriteFastPathCoverage(t *testing.T) {
	for _, lc := range largeCatalogs(t) {
		cfg := mustLoadDir(t, lc.Dir)
		before := fallbackBlobs.Load()
		for _, f := range []func(io.Writer, *DeclarativeConfig) error{WriteYAML, WriteJSON} {
			if err := f(io.Discard, cfg); err != nil {
				t.Fatal(err)
			}
		}
		if n := fallbackBlobs.Load() - before; n > 0 {
			t.Errorf("%s: %d blobs took the reference encoder", lc.Name, n)
		}
	}
}

func ExampleWriteYAML() {
	cfg, err := LoadReader(strings.NewReader(catYAML))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := WriteYAML(os.Stdout, cfg); err != nil {
		fmt.Println(err)
	}
	// Output:
	// ---
	// defaultChannel: stable
	// name: foo
	// schema: olm.package
	// ---
	// entries:
	// - name: foo.v1.0.0
	// name: stable
	// package: foo
	// schema: olm.channel
	// ---
	// image: quay.io/foo/bundle:v1
	// name: foo.v1.0.0
	// package: foo
	// properties:
	// - type: olm.package
	//   value:
	//     packageName: foo
	//     version: 1.0.0
	// schema: olm.bundle
}

func ExampleWriteFS() {
	cfg, err := LoadReader(strings.NewReader(catYAML))
	if err != nil {
		fmt.Println(err)
		return
	}
	var files MapWriter
	if err := WriteFS(context.Background(), &files, cfg, WriteOptions{Format: FormatJSON}); err != nil {
		fmt.Println(err)
	}
	for name := range files.Files {
		fmt.Println(name)
	}
	// Output: foo/catalog.json
}
