package bundle

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// TestDecodeFirst pins down how a manifest file is read: the first YAML
// document or JSON value only, numbers as apimachinery holds them.
func TestDecodeFirst(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // the object as JSON; "" when decoding fails
	}{
		{"json", `{"kind":"A","n":1.0}`, `{"kind":"A","n":1}`},
		{"json stream keeps the first value", "{\"kind\":\"A\"}\n{\"kind\":\"B\"}", `{"kind":"A"}`},
		{"yaml", "kind: A\nx: 1.5\n", `{"kind":"A","x":1.5}`},
		{"yaml 1.1 reads the key n as false", "kind: A\nn: 1\n", `{"false":1,"kind":"A"}`},
		{"first yaml document only", "kind: A\n---\nkind: B\n", `{"kind":"A"}`},
		{"a leading separator", "---\nkind: A\n", `{"kind":"A"}`},
		{"a separator with a comment", "--- # first\nkind: A\n", `{"kind":"A"}`},
		{"CRLF line endings", "kind: A\r\nname: x\r\n", `{"kind":"A","name":"x"}`},
		{"yaml 1.1 booleans", "kind: A\nv: yes\n", `{"kind":"A","v":true}`},
		{"integers beyond int64 become floats", "kind: A\nv: 12345678901234567890\n", `{"kind":"A","v":12345678901234567000}`},
		{"HTML characters are escaped", "kind: A\nv: <&>\n", `{"kind":"A","v":"\u003c\u0026\u003e"}`},
		{"a comment before the first separator is the first document", "# note\n---\nkind: A\n", ""},
		{"no kind", "apiVersion: v1\n", ""},
		{"text after a separator", "kind: A\n--- x\nkind: B\n", ""},
		{"not an object", "- kind: A\n", ""},
		{"empty", "", ""},
		{"json without kind falls back to yaml and fails", `{"apiVersion":"v1"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o object
			err := decodeFirst([]byte(tc.in), &o)
			got := ""
			if err == nil && o.m != nil {
				b, merr := o.marshal()
				if merr != nil {
					t.Fatal(merr)
				}
				got = string(b)
			}
			if got != tc.want {
				t.Errorf("decodeFirst(%q) = %s (err %v), want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

// minimal is a valid bundle: add or replace files to break it.
func minimal() fstest.MapFS {
	return fstest.MapFS{
		"manifests/csv.yaml": {Data: []byte(`apiVersion: operators.coreos.com/v1alpha1
kind: ClusterServiceVersion
metadata:
  name: m.v1.0.0
spec:
  version: 1.0.0
  customresourcedefinitions:
    owned:
    - name: things.m.example.com
      version: v1
      kind: Thing
`)},
		"manifests/crd.yaml": {Data: []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.m.example.com
spec:
  group: m.example.com
  names: {kind: Thing, plural: things}
  versions: [{name: v1}]
`)},
		"metadata/annotations.yaml": {Data: []byte(`annotations:
  operators.operatorframework.io.bundle.package.v1: m
  operators.operatorframework.io.bundle.channels.v1: stable
`)},
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(fstest.MapFS)
		wantErr string
	}{
		{"no annotations", func(f fstest.MapFS) {
			delete(f, "metadata/annotations.yaml")
			f["metadata/other.yaml"] = &fstest.MapFile{Data: []byte("annotations: {}\n")}
		}, "could not find annotations file"},
		{"no metadata directory", func(f fstest.MapFS) { delete(f, "metadata/annotations.yaml") }, "error opening metadata directory"},
		{"no csv", func(f fstest.MapFS) { delete(f, "manifests/csv.yaml") }, "no csv in bundle"},
		{"no manifests", func(f fstest.MapFS) {
			delete(f, "manifests/csv.yaml")
			delete(f, "manifests/crd.yaml")
			f["manifests"] = &fstest.MapFile{Mode: 0o755 | 1<<31}
		}, "no bundle objects found"},
		{"owned crd missing", func(f fstest.MapFS) { delete(f, "manifests/crd.yaml") }, "couldn't find m.example.com/v1/Thing (things) in bundle"},
		{"crd of another group", func(f fstest.MapFS) {
			f["manifests/crd.yaml"].Data = []byte(strings.Replace(string(f["manifests/crd.yaml"].Data), "apiextensions.k8s.io/v1", "example.com/v1", 1))
		}, `no kind "CustomResourceDefinition" is registered for version "example.com/v1"`},
		{"version is not a string", func(f fstest.MapFS) {
			f["manifests/csv.yaml"].Data = []byte(strings.Replace(string(f["manifests/csv.yaml"].Data), "version: 1.0.0", "version: 1.0", 1))
		}, "spec.version"},
		{"no spec", func(f fstest.MapFS) {
			f["manifests/csv.yaml"].Data = []byte("apiVersion: operators.coreos.com/v1alpha1\nkind: ClusterServiceVersion\nmetadata:\n  name: m.v1.0.0\n")
		}, "unexpected end of JSON input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := minimal()
			tc.edit(fsys)
			_, _, err := Render(fsys, "example.com/m:1", Options{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Render: got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	if _, _, err := Render(minimal(), "", Options{Migration: "all"}); err == nil {
		t.Error("Render accepted an unknown migration")
	}
}

// TestMetadataByContent: opm recognises metadata files by what they hold,
// not by their names, and takes the first of each kind in name order.
func TestMetadataByContent(t *testing.T) {
	fsys := minimal()
	fsys["metadata/a-deps.json"] = &fstest.MapFile{Data: []byte(`{"dependencies":[{"type":"olm.package","value":{"packageName":"x","version":">=1.0.0"}}]}`)}
	fsys["metadata/b-more-deps.yaml"] = &fstest.MapFile{Data: []byte("dependencies:\n- type: olm.package\n  value: {packageName: y, version: '>=2.0.0'}\n")}
	fsys["metadata/zz-annotations.yaml"] = &fstest.MapFile{Data: []byte("annotations:\n  operators.operatorframework.io.bundle.package.v1: other\n")}
	b, p, err := Render(fsys, "example.com/m:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, prop := range b.Properties {
		if prop.Type == fbc.PropertyPackageRequired || prop.Type == fbc.PropertyPackage {
			got = append(got, prop.Type+" "+string(prop.Value))
		}
	}
	want := []string{
		`olm.package {"packageName":"m","version":"1.0.0"}`,
		`olm.package.required {"packageName":"x","versionRange":">=1.0.0"}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("properties (-want +got):\n%s", diff)
	}
	if p.Package != "m" || b.Package != "m" {
		t.Errorf("package %q/%q, want m", p.Package, b.Package)
	}
}

// TestMigrateCSVMetadata: migrating a bundle rendered with objects gives
// the bundle rendered with olm.csv.metadata.
func TestMigrateCSVMetadata(t *testing.T) {
	for _, dir := range []string{bundleDir(t, kokuBundle), quirksDir} {
		fsys := dirFS(dir)
		objects, _, err := Render(fsys, "example.com/b:1", Options{Migration: MigrationNone})
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := Render(fsys, "example.com/b:1", Options{Migration: MigrationCSVMetadata})
		if err != nil {
			t.Fatal(err)
		}
		noImage, _, err := Render(fsys, "", Options{Migration: MigrationNone})
		if err != nil {
			t.Fatal(err)
		}
		cfg := &fbc.DeclarativeConfig{Bundles: []fbc.Bundle{objects, noImage}}
		if err := MigrateCSVMetadata(cfg); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tree(t, want), tree(t, cfg.Bundles[0])); diff != "" {
			t.Errorf("%s: migrated bundle differs (-rendered with csv metadata +migrated):\n%s", dir, diff)
		}
		if diff := cmp.Diff(tree(t, noImage), tree(t, cfg.Bundles[1])); diff != "" {
			t.Errorf("%s: a bundle without an image was migrated:\n%s", dir, diff)
		}
		// Migrating twice changes nothing.
		again := tree(t, cfg)
		if err := MigrateCSVMetadata(cfg); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(again, tree(t, cfg)); diff != "" {
			t.Errorf("%s: second migration changed the catalog:\n%s", dir, diff)
		}
	}
}
