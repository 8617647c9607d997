package world

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"database/sql"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"
)

const quirksDir = "testdata/quirks"

func TestParseSourceRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want sourceRef
		key  string
	}{
		{"quay.io/org/op:v1", sourceRef{Host: "quay.io", Path: "org/op", Tag: "v1"}, "quay.io/org/op:v1"},
		{"quay.io/org/op@sha256:abc", sourceRef{Host: "quay.io", Path: "org/op", Digest: "sha256:abc"}, "quay.io/org/op@sha256:abc"},
		{"quay.io/org/op:v1@sha256:abc", sourceRef{Host: "quay.io", Path: "org/op", Tag: "v1", Digest: "sha256:abc"}, "quay.io/org/op:v1@sha256:abc"},
		{"nginx", sourceRef{Host: "docker.io", Path: "library/nginx", Tag: "latest"}, "docker.io/library/nginx:latest"},
		{"nginx:1.25", sourceRef{Host: "docker.io", Path: "library/nginx", Tag: "1.25"}, "docker.io/library/nginx:1.25"},
		{"index.docker.io/library/nginx:1.25", sourceRef{Host: "docker.io", Path: "library/nginx", Tag: "1.25"}, "docker.io/library/nginx:1.25"},
		{"bitnami/redis:7", sourceRef{Host: "docker.io", Path: "bitnami/redis", Tag: "7"}, "docker.io/bitnami/redis:7"},
		{"Registry.Example.com:5000/a/b/c:t", sourceRef{Host: "registry.example.com:5000", Path: "a/b/c", Tag: "t"}, "registry.example.com:5000/a/b/c:t"},
		{"localhost/app", sourceRef{Host: "localhost", Path: "app", Tag: "latest"}, "localhost/app:latest"},
		{"quay.io/org/my.operator-bundle:v1.2.0", sourceRef{Host: "quay.io", Path: "org/my.operator-bundle", Tag: "v1.2.0"}, "quay.io/org/my.operator-bundle:v1.2.0"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSourceRef(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseSourceRef(%q) (-want +got):\n%s", tc.in, diff)
			}
			if got.key() != tc.key {
				t.Errorf("key = %q, want %q", got.key(), tc.key)
			}
		})
	}
	for _, bad := range []string{"", "  ", "quay.io/org/op@sha256", "quay.io/org/op@"} {
		if _, err := parseSourceRef(bad); err == nil {
			t.Errorf("parseSourceRef(%q): want error", bad)
		}
	}
}

func TestRewrittenRef(t *testing.T) {
	const dgst = "sha256:" + "ab" + "cd"
	for _, tc := range []struct {
		in, prefix, want string
	}{
		{"quay.io/org/op:v1", "", "reg:5000/quay.io/org/op:v1"},
		{"quay.io/org/op@sha256:00", "", "reg:5000/quay.io/org/op@" + dgst},
		{"quay.io/org/op:v1@sha256:00", "", "reg:5000/quay.io/org/op:v1@" + dgst},
		{"host:5000/a/b:t", "src/ns", "reg:5000/src/ns/host-5000/a/b:t"},
		{"ghcr.io/org/app", "/src/", "reg:5000/src/ghcr.io/org/app:latest"},
	} {
		r, err := parseSourceRef(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := rewrittenRef(targetRepo("reg:5000", tc.prefix, r), r, dgst); got != tc.want {
			t.Errorf("rewrite %q (prefix %q) = %q, want %q", tc.in, tc.prefix, got, tc.want)
		}
	}
}

// TestBuildIsDeterministic: the same seed, catalog and registry give the
// same bytes; another seed gives other images. Images that do not embed
// references (everything but bundles and the catalog) do not even depend on
// the registry address.
func TestBuildIsDeterministic(t *testing.T) {
	reg := startRegistry(t)
	build := func(reg string, seed int64) *World {
		t.Helper()
		o := DefaultOptions(reg)
		o.Seed = seed
		w, err := Build(t.Context(), os.DirFS(quirksDir), o)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	a, b := build(reg, 7), build(reg, 7)
	if diff := cmp.Diff(a.Images, b.Images); diff != "" {
		t.Errorf("same seed, different images (-first +second):\n%s", diff)
	}
	if a.Catalog != b.Catalog || a.Stats != b.Stats {
		t.Errorf("same seed: catalog %s %+v, then %s %+v", a.Catalog, a.Stats, b.Catalog, b.Stats)
	}
	if c := build(reg, 8); c.Catalog == a.Catalog {
		t.Errorf("seeds 7 and 8 built the same catalog %s", a.Catalog)
	}

	other := build(startRegistry(t), 7)
	related := func(w *World, reg string) map[string]string {
		out := map[string]string{}
		for orig, ref := range w.Rewritten {
			// Bundle images embed rewritten references; the quirks catalog
			// has "bundle" in every bundle image's name.
			if !strings.Contains(orig, "bundle") {
				out[orig] = strings.TrimPrefix(ref, reg)
			}
		}
		return out
	}
	if diff := cmp.Diff(related(a, reg), related(other, strings.SplitN(other.Catalog, "/", 2)[0])); diff != "" {
		t.Errorf("related image digests depend on the registry address (-first +second):\n%s", diff)
	}
}

// TestBuildRewritesAndPushes checks the rewritten catalog against the input:
// every reference points at the registry and resolves there, each reference
// keeps its shape, and everything but image references is untouched.
func TestBuildRewritesAndPushes(t *testing.T) {
	reg := startRegistry(t)
	w, err := Build(t.Context(), os.DirFS(quirksDir), DefaultOptions(reg))
	if err != nil {
		t.Fatal(err)
	}
	in := mustLoad(t, os.DirFS(quirksDir))
	out := mustLoad(t, w.Configs)

	digest := `@sha256:[0-9a-f]{64}$`
	for _, tc := range []struct{ orig, pattern string }{
		{"quay.io/quirky/bundle:v1.0.0", `^REG/quay\.io/quirky/bundle:v1\.0\.0$`},
		{"nginx:1.25", `^REG/docker\.io/library/nginx:1\.25$`},
		{"docker.io/library/nginx:1.25", `^REG/docker\.io/library/nginx:1\.25$`},
		{"registry.example.com:5000/quirky/bundle@sha256:" + strings.Repeat("1", 64), `^REG/registry\.example\.com-5000/quirky/bundle` + digest},
		{"quay.io/quirky/operator:v1.1.0@sha256:" + strings.Repeat("2", 64), `^REG/quay\.io/quirky/operator:v1\.1\.0` + digest},
		{"quay.io/quirky/quirky.operator-bundle:v1.2.0", `^REG/quay\.io/quirky/quirky\.operator-bundle:v1\.2\.0$`},
		{"ghcr.io/quirky/sidecar", `^REG/ghcr\.io/quirky/sidecar:latest$`},
	} {
		got, ok := w.Rewritten[tc.orig]
		if !ok {
			t.Errorf("%s was not rewritten", tc.orig)
			continue
		}
		if !regexp.MustCompile(strings.ReplaceAll(tc.pattern, "REG", regexp.QuoteMeta(reg))).MatchString(got) {
			t.Errorf("%s rewritten to %s, want match for %s", tc.orig, got, tc.pattern)
		}
	}

	// Every reference the catalog now carries was pushed and resolves.
	pushed := map[string]bool{}
	for _, ref := range w.Images {
		pushed[ref] = true
	}
	for _, d := range out {
		if d.schema() != schemaBundle {
			continue
		}
		refs := []string{d.str("image")}
		for _, ri := range relatedImages(d) {
			refs = append(refs, ri.Image)
		}
		for _, ref := range refs {
			if ref == "" {
				continue
			}
			if !strings.HasPrefix(ref, reg+"/") || !pushed[ref] {
				t.Errorf("bundle %s: reference %s is not one of the pushed images", d.str("name"), ref)
			}
		}
	}
	for _, ref := range append(append([]string{}, w.Images...), w.Catalog, w.CatalogTag) {
		if _, err := remote.Head(mustRef(t, ref)); err != nil {
			t.Errorf("pushed reference does not resolve: %v", err)
		}
	}

	// The tag-only reference owns its tag: tag@digest references of the same
	// tag did not overwrite it, whatever the push order.
	tagDesc, err := remote.Head(mustRef(t, reg+"/quay.io/quirky/operator:v1.1.0"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{strings.Repeat("2", 64), strings.Repeat("4", 64)} {
		ref := w.Rewritten["quay.io/quirky/operator:v1.1.0@sha256:"+h]
		if strings.HasSuffix(ref, tagDesc.Digest.String()) {
			t.Errorf("tag v1.1.0 points at %s, the image of a tag@digest reference", ref)
		}
	}

	// Everything but image references is untouched.
	if diff := cmp.Diff(withoutImages(in), withoutImages(out)); diff != "" {
		t.Errorf("rewrite changed more than image references (-input +output):\n%s", diff)
	}
}

// withoutImages blanks image references (and the olm.bundle.object payloads
// that embed them) and keys documents, for comparing catalogs.
func withoutImages(docs []doc) map[string]any {
	out := map[string]any{}
	for i, d := range docs {
		j, _ := marshalJSON(d.obj)
		var o map[string]any
		_ = yaml.Unmarshal(j, &o)
		if o["schema"] == schemaBundle {
			o["image"] = "<image>"
			ris, _ := o["relatedImages"].([]any)
			for _, ri := range ris {
				ri.(map[string]any)["image"] = "<image>"
			}
			props, _ := o["properties"].([]any)
			for _, p := range props {
				if pm := p.(map[string]any); pm["type"] == propBundleObject {
					pm["value"] = "<object>"
				}
			}
		}
		key := d.schema() + "/" + d.pkg() + "/" + d.str("name")
		if _, dup := out[key]; dup {
			key += "#" + string(rune('0'+i))
		}
		out[key] = o
	}
	return out
}

func TestMultiArch(t *testing.T) {
	for _, tc := range []struct {
		name        string
		every       int
		wantIndexes bool
		wantAll     bool
	}{
		{"every image", 1, true, true},
		{"never", 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := startRegistry(t)
			o := DefaultOptions(reg)
			o.MultiArchEvery = tc.every
			o.CatalogPlatforms = DefaultPlatforms[:2]
			w, err := Build(t.Context(), os.DirFS(quirksDir), o)
			if err != nil {
				t.Fatal(err)
			}
			bundles := bundleImages(t, w)
			indexes := 0
			for _, ref := range w.Images {
				desc, err := remote.Get(mustRef(t, ref))
				if err != nil {
					t.Fatal(err)
				}
				if !desc.MediaType.IsIndex() {
					if tc.wantAll && !bundles[ref] {
						t.Errorf("%s is a single image, want an index", ref)
					}
					continue
				}
				if bundles[ref] {
					t.Errorf("bundle image %s is an index", ref)
				}
				indexes++
				assertIndex(t, ref, desc, o.Platforms)
			}
			if (indexes > 0) != tc.wantIndexes {
				t.Errorf("%d multi-arch images, want some: %v", indexes, tc.wantIndexes)
			}
			desc, err := remote.Get(mustRef(t, w.Catalog))
			if err != nil {
				t.Fatal(err)
			}
			assertIndex(t, w.Catalog, desc, o.CatalogPlatforms)
		})
	}
}

// assertIndex checks that the index at ref lists exactly platforms and that
// every child resolves in the registry by digest.
func assertIndex(t *testing.T, ref string, desc *remote.Descriptor, platforms []v1.Platform) {
	t.Helper()
	idx, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, m := range im.Manifests {
		got = append(got, m.Platform.String())
		if _, err := remote.Image(mustRef(t, repoOf(t, ref)+"@"+m.Digest.String())); err != nil {
			t.Errorf("%s: child %s (%s) does not resolve: %v", ref, m.Digest, m.Platform, err)
		}
	}
	for _, p := range platforms {
		want = append(want, p.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s platforms (-want +got):\n%s", ref, diff)
	}
}

func repoOf(t *testing.T, ref string) string {
	t.Helper()
	return mustRef(t, ref).Context().Name()
}

func mustRef(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// bundleImages returns the rewritten references that are bundle images.
func bundleImages(t *testing.T, w *World) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, d := range mustLoad(t, w.Configs) {
		if d.schema() == schemaBundle && d.str("image") != "" {
			out[d.str("image")] = true
		}
	}
	return out
}

// TestBundleImages checks that bundle images are registry+v1 bundles whose
// labels, annotations.yaml and CSV agree with the catalog.
func TestBundleImages(t *testing.T) {
	reg := startRegistry(t)
	w, err := Build(t.Context(), os.DirFS(quirksDir), DefaultOptions(reg))
	if err != nil {
		t.Fatal(err)
	}
	docs := mustLoad(t, w.Configs)
	idx, err := indexFBC(docs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		bundle, channels, replaces string
	}{
		{"quirky.v1.0.0", "stable", ""},
		{"quirky.v1.1.0", "fast,stable", "quirky.v1.0.0"},
		{"quirky.v1.2.0", "stable", "quirky.v1.1.0"},
		{"plain.v0.1.0", "alpha", ""},
	} {
		t.Run(tc.bundle, func(t *testing.T) {
			pkg := strings.SplitN(tc.bundle, ".", 2)[0]
			d := idx.packages[pkg].bundles[tc.bundle]
			img, err := remote.Image(mustRef(t, d.str("image")))
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			wantAnn := map[string]string{
				labelMediaType:      "registry+v1",
				labelManifests:      "manifests/",
				labelMetadata:       "metadata/",
				labelPackage:        pkg,
				labelChannels:       tc.channels,
				labelDefaultChannel: idx.packages[pkg].defaultChannel,
			}
			if diff := cmp.Diff(wantAnn, cf.Config.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			files := imageFiles(t, img)
			var ann struct {
				Annotations map[string]string `json:"annotations"`
			}
			if err := yaml.Unmarshal(files["metadata/annotations.yaml"], &ann); err != nil {
				t.Fatalf("metadata/annotations.yaml: %v", err)
			}
			if diff := cmp.Diff(wantAnn, ann.Annotations); diff != "" {
				t.Errorf("annotations.yaml (-want +got):\n%s", diff)
			}
			var csv struct {
				Kind     string
				Metadata struct{ Name string }
				Spec     struct {
					Version  string
					Replaces string
				}
			}
			if err := yaml.Unmarshal(files["manifests/"+tc.bundle+".clusterserviceversion.yaml"], &csv); err != nil {
				t.Fatalf("CSV: %v", err)
			}
			if csv.Kind != "ClusterServiceVersion" || csv.Metadata.Name != tc.bundle || csv.Spec.Replaces != tc.replaces {
				t.Errorf("CSV = %+v, want %s replacing %q", csv, tc.bundle, tc.replaces)
			}
		})
	}
}

// imageFiles reads every regular file of img's layers.
func imageFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				b, _ := io.ReadAll(tr)
				out[h.Name] = b
			}
		}
		rc.Close()
	}
	return out
}

// TestCatalogImages checks both catalog flavours: labels, entrypoint and
// content where opm looks for them.
func TestCatalogImages(t *testing.T) {
	for _, tc := range []struct {
		name      string
		build     func(*testing.T, string) *World
		label     string
		wantCmd   []string
		checkFile func(*testing.T, *World, map[string][]byte)
	}{
		{
			name: "fbc",
			build: func(t *testing.T, reg string) *World {
				w, err := Build(t.Context(), os.DirFS(quirksDir), DefaultOptions(reg))
				if err != nil {
					t.Fatal(err)
				}
				return w
			},
			label:   labelIndexConfigs + "=/configs",
			wantCmd: []string{"serve", "/configs", "--cache-dir=/tmp/cache"},
			checkFile: func(t *testing.T, w *World, files map[string][]byte) {
				for _, pkg := range []string{"quirky", "plain"} {
					want, _ := fs.ReadFile(w.Configs, pkg+"/catalog.yaml")
					if got := files["configs/"+pkg+"/catalog.yaml"]; len(want) == 0 || !bytes.Equal(got, want) {
						t.Errorf("configs/%s/catalog.yaml: %d bytes in the image, want the %d of World.Configs", pkg, len(got), len(want))
					}
				}
			},
		},
		{
			name: "sqlite",
			build: func(t *testing.T, reg string) *World {
				w, err := BuildSQLiteIndex(t.Context(), os.DirFS(quirksDir), DefaultOptions(reg))
				if err != nil {
					t.Fatal(err)
				}
				return w
			},
			label:   labelIndexDatabase + "=/database/index.db",
			wantCmd: []string{"registry", "serve", "--database", "/database/index.db"},
			checkFile: func(t *testing.T, w *World, files map[string][]byte) {
				checkIndexDB(t, w, files["database/index.db"])
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := startRegistry(t)
			w := tc.build(t, reg)
			img, err := remote.Image(mustRef(t, w.CatalogTag))
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := img.Digest(); !strings.HasSuffix(w.Catalog, "@"+d.String()) {
				t.Errorf("tag %s is %s, Catalog says %s", w.CatalogTag, d, w.Catalog)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			k, v, _ := strings.Cut(tc.label, "=")
			if cf.Config.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
			}
			if diff := cmp.Diff([]string{"/bin/opm"}, cf.Config.Entrypoint); diff != "" {
				t.Errorf("entrypoint (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantCmd, cf.Config.Cmd); diff != "" {
				t.Errorf("cmd (-want +got):\n%s", diff)
			}
			tc.checkFile(t, w, imageFiles(t, img))
		})
	}
}

// checkIndexDB reads the SQLite index back: migration version, packages,
// channel heads and related images.
func checkIndexDB(t *testing.T, w *World, db []byte) {
	t.Helper()
	if len(db) == 0 {
		t.Fatal("no database/index.db in the image")
	}
	path := filepath.Join(t.TempDir(), "index.db")
	if err := os.WriteFile(path, db, 0o644); err != nil {
		t.Fatal(err)
	}
	conn, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	query := func(q string) []string {
		rows, err := conn.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		sort.Strings(out)
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"SELECT CAST(version AS TEXT) FROM schema_migrations", []string{"13"}},
		{"SELECT name || ':' || default_channel FROM package", []string{"plain:alpha", "quirky:stable"}},
		{"SELECT package_name || '/' || name || ':' || head_operatorbundle_name FROM channel",
			[]string{"plain/alpha:plain.v0.1.0", "quirky/fast:quirky.v2.0.0", "quirky/stable:quirky.v2.0.0"}},
		{"SELECT name FROM operatorbundle", []string{"plain.v0.1.0", "quirky.v1.0.0", "quirky.v1.1.0", "quirky.v1.1.1", "quirky.v1.2.0", "quirky.v2.0.0"}},
		{"SELECT DISTINCT group_name || '/' || version || '/' || kind || '/' || plural FROM api",
			[]string{"cert-manager.io/v1/Certificate/certificates", "quirky.example.com/v1/Widget/widgets", "quirky.example.com/v1alpha1/Widget/widgets"}},
		{"SELECT operatorbundle_name || ' ' || type FROM dependencies",
			[]string{"quirky.v1.1.1 olm.gvk", "quirky.v2.0.0 olm.package"}},
	} {
		if diff := cmp.Diff(tc.want, query(tc.query)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.query, diff)
		}
	}
	// Every related image of the catalog is in related_image.
	got := map[string]bool{}
	for _, img := range query("SELECT image FROM related_image") {
		got[img] = true
	}
	for _, d := range mustLoad(t, w.Configs) {
		for _, ri := range relatedImages(d) {
			if !got[ri.Image] {
				t.Errorf("related_image lacks %s of %s", ri.Image, d.str("name"))
			}
		}
	}
}

func TestBuildRejects(t *testing.T) {
	good := fstest.MapFS{"p/catalog.yaml": {Data: []byte("schema: olm.package\nname: p\ndefaultChannel: c\n")}}
	badRef := fstest.MapFS{"p/catalog.yaml": {Data: []byte(`---
schema: olm.package
name: p
defaultChannel: c
---
schema: olm.bundle
package: p
name: p.v1
image: quay.io/p/bundle@sha256
properties: [{type: olm.package, value: {packageName: p, version: 1.0.0}}]
`)}}
	reg := startRegistry(t)
	for _, tc := range []struct {
		name string
		fsys fs.FS
		mod  func(*Options)
		want string
	}{
		{"no registry", good, func(o *Options) { o.Registry = "" }, "Registry is required"},
		{"registry with a path", good, func(o *Options) { o.Registry = reg + "/ns" }, "use Prefix"},
		{"unknown format", good, func(o *Options) { o.CatalogFormat = "toml" }, "CatalogFormat"},
		{"empty catalog", fstest.MapFS{"README": {Data: []byte("hi")}}, nil, "no FBC documents"},
		{"malformed reference", badRef, nil, "malformed digest"},
		{"malformed YAML", fstest.MapFS{"p/catalog.yaml": {Data: []byte("schema: [")}}, nil, "parse p/catalog.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions(reg)
			if tc.mod != nil {
				tc.mod(&o)
			}
			_, err := Build(t.Context(), tc.fsys, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeStream(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // schema of each document
	}{
		{"yaml", "schema: a\n---\nschema: b\n", []string{"a", "b"}},
		{"leading marker and empty documents", "---\n# comment\n---\nschema: a\n---\n", []string{"a"}},
		{"marker with content", "--- {schema: a}\n", []string{"a"}},
		{"block scalar with dashes", "schema: a\ndescription: |\n  ---\n  not a marker\n", []string{"a"}},
		{"json stream", "{\"schema\": \"a\"}\n{\"schema\": \"b\"}", []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := decodeStream([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o["schema"].(string))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestExtractTarGz(t *testing.T) {
	archive := func(entries ...tar.Header) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for _, h := range entries {
			h.Size = int64(len(h.Name))
			if h.Typeflag != tar.TypeReg {
				h.Size = 0
			}
			if err := tw.WriteHeader(&h); err != nil {
				t.Fatal(err)
			}
			if h.Size > 0 {
				tw.Write([]byte(h.Name))
			}
		}
		tw.Close()
		zw.Close()
		return buf.Bytes()
	}
	for _, tc := range []struct {
		name    string
		entries []tar.Header
		wantErr bool
		want    []string
	}{
		{"files and dirs", []tar.Header{
			{Name: "catalogs/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "catalogs/v4.20/p/catalog.yaml", Typeflag: tar.TypeReg, Mode: 0o644},
		}, false, []string{"catalogs/v4.20/p/catalog.yaml"}},
		{"links are skipped", []tar.Header{
			{Name: "a/catalog.yaml", Typeflag: tar.TypeReg, Mode: 0o644},
			{Name: "a/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		}, false, []string{"a/catalog.yaml"}},
		{"traversal", []tar.Header{{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}}, true, nil},
		{"nested traversal", []tar.Header{{Name: "a/../../evil", Typeflag: tar.TypeReg, Mode: 0o644}}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := ExtractTarGz(bytes.NewReader(archive(tc.entries...)), dir)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ExtractTarGz: %v, want error: %v", err, tc.wantErr)
			}
			var got []string
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					rel, _ := filepath.Rel(dir, p)
					got = append(got, filepath.ToSlash(rel))
				}
				return nil
			})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpenCatalogArchive(t *testing.T) {
	root := repoRoot(t)
	fsys, err := OpenCatalogArchive(filepath.Join(root, "testdata/fbc/large/community-operators-prod-catalogs-v4.20.tar.gz"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) < 2 {
		t.Fatalf("catalog root has %d entries, want one per package", len(ents))
	}
	if _, err := fs.Stat(fsys, ents[0].Name()+"/catalog.yaml"); err != nil {
		t.Errorf("root is not the package level: %v", err)
	}
}

func TestPushBundleDir(t *testing.T) {
	root := repoRoot(t)
	reg := startRegistry(t)
	dir := filepath.Join(root, "testdata/bundles/community__koku-metrics-operator__4.4.1")
	first, err := PushBundleDir(t.Context(), dir, reg+"/bundles/koku:4.4.1")
	if err != nil {
		t.Fatal(err)
	}
	second, err := PushBundleDir(t.Context(), dir, reg+"/bundles/koku:again")
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("same directory, digests %s and %s", first, second)
	}
	img, err := remote.Image(mustRef(t, reg+"/bundles/koku@"+first.String()))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		labelPackage:                    "koku-metrics-operator",
		labelChannels:                   "alpha,beta",
		labelDefaultChannel:             "beta",
		"com.redhat.openshift.versions": "4.12",
	} {
		if cf.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
		}
	}
	files := imageFiles(t, img)
	for _, f := range []string{
		"metadata/annotations.yaml",
		"manifests/koku-metrics-operator.clusterserviceversion.yaml",
		"tests/scorecard/config.yaml",
	} {
		if _, ok := files[f]; !ok {
			t.Errorf("bundle image lacks %s", f)
		}
	}
}

// repoRoot finds the repository root by walking up to testdata/fbc.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "testdata", "fbc")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root not found")
		}
		dir = parent
	}
}
