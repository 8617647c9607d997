package fbc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// TestLoadMatchesReference loads every real catalog with LoadFS and with the
// opm-equivalent reference decoder and requires identical results.
func TestLoadMatchesReference(t *testing.T) {
	dirs := smallCatalogs(t)
	for _, lc := range largeCatalogs(t) {
		dirs = append(dirs, lc.Dir)
	}
	for _, dir := range dirs {
		name, _ := filepath.Rel(testdataFBC, dir)
		if filepath.IsAbs(name) || name == "" || name[0] == '.' {
			name = filepath.Base(filepath.Dir(filepath.Dir(dir))) + "/" + filepath.Base(dir)
		}
		t.Run(name, func(t *testing.T) {
			got := mustLoadDir(t, dir)
			want, err := referenceLoad(os.DirFS(dir))
			if err != nil {
				t.Fatalf("reference load: %v", err)
			}
			if !reflect.DeepEqual(want, got) { // cmp.Diff alone is slow on big catalogs
				t.Errorf("LoadFS differs from the reference decoder (-want +got):\n%s", cmp.Diff(want, got))
			}
		})
	}
}

// TestFastPathCoverage checks that real catalogs rarely need the reference
// YAML decoder; if this fails the fast path lost coverage (and speed).
func TestFastPathCoverage(t *testing.T) {
	for _, lc := range largeCatalogs(t) {
		before := slowDocs.Load()
		mustLoadDir(t, lc.Dir)
		if n := slowDocs.Load() - before; n > 0 {
			t.Errorf("%s: %d documents took the slow path", lc.Name, n)
		}
	}
}

const (
	pkgYAML = "schema: olm.package\nname: foo\ndefaultChannel: stable\n"
	chYAML  = "schema: olm.channel\npackage: foo\nname: stable\nentries:\n- name: foo.v1.0.0\n"
	bunYAML = "schema: olm.bundle\nname: foo.v1.0.0\npackage: foo\nimage: quay.io/foo/bundle:v1\nproperties:\n- type: olm.package\n  value:\n    packageName: foo\n    version: 1.0.0\n"
	catYAML = pkgYAML + "---\n" + chYAML + "---\n" + bunYAML
	pkgJSON = `{"schema":"olm.package","name":"foo","defaultChannel":"stable"}`
	chJSON  = `{"schema":"olm.channel","package":"foo","name":"stable","entries":[{"name":"foo.v1.0.0"}]}`
	bunJSON = `{"schema":"olm.bundle","name":"foo.v1.0.0","package":"foo","image":"quay.io/foo/bundle:v1","properties":[{"type":"olm.package","value":{"packageName":"foo","version":"1.0.0"}}]}`
)

// loadCases are catalogs LoadFS must read, or refuse, as opm does; the e2e
// test feeds the same files to opm render.
var loadCases = []struct {
	name    string
	files   map[string]string
	err     string // substring of the error; empty: must load
	blobs   int    // blobs expected when it loads
	skipOPM bool   // Ferry deliberately differs from opm
}{
	{name: "yaml stream", files: map[string]string{"foo/catalog.yaml": catYAML}, blobs: 3},
	{name: "json stream", files: map[string]string{"foo/catalog.json": pkgJSON + "\n" + chJSON + bunJSON}, blobs: 3},
	{name: "yml and spread files", files: map[string]string{"a.yml": pkgYAML, "b/c.yaml": chYAML, "b/d.json": bunJSON}, blobs: 3},
	{name: "leading and trailing separators", files: map[string]string{"c.yaml": "---\n" + catYAML + "---\n"}, blobs: 3},
	{name: "separator with comment", files: map[string]string{"c.yaml": pkgYAML + "--- # next\n" + chYAML}, blobs: 2},
	{name: "json then yaml", files: map[string]string{"c.json": pkgJSON + "\n" + chYAML}, blobs: 2},
	{name: "empty file", files: map[string]string{"c.yaml": catYAML, "empty.yaml": ""}, blobs: 3},
	{name: "indexignore", files: map[string]string{
		"c.yaml": catYAML, ".indexignore": "ignored/\n# comment\n*.tmp.yaml\n",
		"ignored/bad.yaml": "not: [valid", "x.tmp.yaml": "nope: nope"}, blobs: 3},
	{name: "indexignore negation and nesting", files: map[string]string{
		"sub/.indexignore": "*.yaml\n!keep.yaml\n", "sub/drop.yaml": "garbage: [", "sub/keep.yaml": catYAML}, blobs: 3},
	{name: "indexignore scoped to its directory", files: map[string]string{
		"sub/.indexignore": "c.yaml\n", "c.yaml": catYAML, "sub/c.yaml": "broken: ["}, blobs: 3},
	{name: "reference decoder constructs", files: map[string]string{"c.yaml": pkgYAML + "---\n" +
		"schema: olm.channel\npackage: foo\nname: stable\nentries: [{name: foo.v1.0.0}]\n---\n" +
		"schema: olm.bundle\nname: &n foo.v1.0.0\npackage: foo\nimage: quay.io/foo/bundle:v1\nproperties:\n- {type: olm.package, value: {packageName: foo, version: 1.0.0}}\n- type: x.name\n  value: *n\n"}, blobs: 3},
	{name: "keys in other case", files: map[string]string{"c.yaml": "Schema: olm.package\nName: foo\nDefaultChannel: stable\n"}, blobs: 1},
	{name: "unknown schema", files: map[string]string{"c.yaml": catYAML + "---\nschema: example.com/thing\npackage: foo\nname: x\nspec: {a: 1}\n"}, blobs: 4},
	{name: "other files are skipped", files: map[string]string{"c.yaml": catYAML, "README.md": "# hello", "Dockerfile": "FROM scratch"}, blobs: 3, skipOPM: true},

	{name: "missing schema", files: map[string]string{"c.yaml": "name: foo\n"}, err: "c.yaml:1: blob is missing the root schema field"},
	{name: "comment-only document", files: map[string]string{"c.yaml": "# just a comment\n---\n" + catYAML}, err: "missing the root schema"},
	{name: "blank document at end", files: map[string]string{"c.yaml": catYAML + "---\n\n"}, err: "missing the root schema"},
	{name: "blank file", files: map[string]string{"c.yaml": "\n"}, err: "missing the root schema"},
	{name: "schema not a string", files: map[string]string{"c.yaml": "schema: [a]\n"}, err: `expected value for key "schema" to be a string`},
	{name: "package not a string", files: map[string]string{"c.yaml": "schema: olm.channel\npackage:\nname: x\n"}, err: `expected value for key "package" to be a string`},
	{name: "keys differing in case", files: map[string]string{"c.yaml": "schema: olm.package\nname: foo\nNAME: bar\n"}, err: "duplicate keys"},
	{name: "not a mapping", files: map[string]string{"c.yaml": "- a\n- b\n"}, err: "c.yaml:1:"},
	{name: "bad separator", files: map[string]string{"c.yaml": pkgYAML + "---x\n" + chYAML}, err: "c.yaml:4: invalid YAML document separator"},
	{name: "invalid yaml", files: map[string]string{"c.yaml": catYAML + "---\nschema: olm.bundle\nname: [a\n"}, err: "c.yaml:"},
	{name: "invalid json", files: map[string]string{"c.json": pkgJSON + chJSON + "\n{\"schema\": }"}, err: "c.json:2:"},
	{name: "type mismatch", files: map[string]string{"c.yaml": "schema: olm.bundle\nname: b\nproperties: {a: b}\n"}, err: "parse bundle: json: cannot unmarshal object"},
}

func TestLoadFS(t *testing.T) {
	for _, tc := range loadCases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, content := range tc.files {
				fsys[name] = &fstest.MapFile{Data: []byte(content)}
			}
			cfg, err := LoadFS(context.Background(), fsys)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one containing %q", err, tc.err)
				}
				var perr *ParseError
				if !errors.As(err, &perr) || perr.File == "" {
					t.Errorf("error %v is not a *ParseError naming the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := len(cfg.Packages) + len(cfg.Channels) + len(cfg.Bundles) + len(cfg.Deprecations) + len(cfg.Others); n != tc.blobs {
				t.Errorf("loaded %d blobs, want %d: %+v", n, tc.blobs, cfg)
			}
			want, err := referenceLoad(fsys)
			if err != nil {
				t.Fatalf("reference load: %v", err)
			}
			if diff := cmp.Diff(want, cfg); diff != "" {
				t.Errorf("differs from the reference decoder (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadFSReportsEveryBrokenFile(t *testing.T) {
	fsys := fstest.MapFS{
		"a.yaml": {Data: []byte("name: x\n")},
		"b.yaml": {Data: []byte(catYAML)},
		"c.json": {Data: []byte("{\n\"schema\": 1}")},
	}
	_, err := LoadFS(context.Background(), fsys)
	if err == nil {
		t.Fatal("no error")
	}
	got := err.Error()
	for _, want := range []string{"a.yaml:1:", "c.json:1:"} {
		if !strings.Contains(got, want) {
			t.Errorf("error %q does not mention %q", got, want)
		}
	}
}

func TestLoadFSCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadFS(ctx, fstest.MapFS{"a.yaml": {Data: []byte(catYAML)}}); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestLoadFSOthers(t *testing.T) {
	fsys := fstest.MapFS{"c.yaml": {Data: []byte("schema: example.com/thing\nPackage: foo\nname: x\nspec:\n  z: 1\n  a: [true, ~, 1.50]\n")}}
	cfg, err := LoadFS(context.Background(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []Meta{{Schema: "example.com/thing", Package: "foo", Name: "x",
		Blob: json.RawMessage(`{"Package":"foo","name":"x","schema":"example.com/thing","spec":{"a":[true,null,1.5],"z":1}}`)}}
	if diff := cmp.Diff(want, cfg.Others); diff != "" {
		t.Errorf("Others (-want +got):\n%s", diff)
	}
}

func ExampleLoadFS() {
	fsys := fstest.MapFS{"foo/catalog.yaml": {Data: []byte(catYAML)}}
	cfg, err := LoadFS(context.Background(), fsys)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Packages[0].Name, cfg.Channels[0].Name, cfg.Bundles[0].Name, string(cfg.Bundles[0].Properties[0].Value))
	// Output: foo stable foo.v1.0.0 {"packageName":"foo","version":"1.0.0"}
}

// TestLoadReaderChunking feeds files through readers that return a few
// bytes at a time, so the streaming window compacts and grows mid-document;
// the result must not change.
func TestLoadReaderChunking(t *testing.T) {
	inputs := map[string][]byte{}
	for _, tc := range loadCases {
		if len(tc.files) == 1 {
			for name, content := range tc.files {
				inputs[tc.name+"/"+name] = []byte(content)
			}
		}
	}
	big := filepath.Join(largeCatalogs(t)[0].Dir, "dell-csm-operator-certified", "catalog.yaml")
	data, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	inputs["dell yaml"] = data
	cfg, err := LoadReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, cfg); err != nil {
		t.Fatal(err)
	}
	inputs["dell json"] = js.Bytes()
	for name, data := range inputs {
		want, wantErr := LoadReader(bytes.NewReader(data))
		for rname, r := range map[string]io.Reader{
			"one byte": iotest.OneByteReader(bytes.NewReader(data)),
			"half":     iotest.HalfReader(bytes.NewReader(data)),
		} {
			got, err := LoadReader(r)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Errorf("%s, %s reader: error %v, want %v", name, rname, err, wantErr)
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s, %s reader: result differs", name, rname)
			}
		}
	}
}
