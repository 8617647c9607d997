package reconcile

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferry-gitops/ferry/internal/catalogimage"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/spec"
)

// manyPackagesImage is a catalog image whose /configs holds n packages,
// each in its own directory (configs/pkg-000042/catalog.yaml) with one
// channel and one bundle: the layout that made catalog reading quadratic.
func manyPackagesImage(tb testing.TB, n int) v1.Image {
	tb.Helper()
	var raw bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&raw, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	for i := range n {
		p := fmt.Sprintf("pkg-%06d", i)
		doc := fmt.Sprintf(`---
schema: olm.package
name: %[1]s
defaultChannel: stable
---
schema: olm.channel
package: %[1]s
name: stable
entries:
  - name: %[1]s.v1.0.0
---
schema: olm.bundle
name: %[1]s.v1.0.0
package: %[1]s
image: quay.example/ops/%[1]s-bundle@sha256:%064x
properties:
  - type: olm.package
    value:
      packageName: %[1]s
      version: 1.0.0
`, p, i)
		tw.WriteHeader(&tar.Header{Name: "configs/" + p + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		tw.WriteHeader(&tar.Header{Name: "configs/" + p + "/catalog.yaml", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(doc))})
		io.WriteString(tw, doc)
	}
	tw.Close()
	zw.Close()
	data := raw.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		tb.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		tb.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{catalogimage.LabelConfigs: "/configs"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// manyPackages pushes a catalog of n package directories and returns an
// Observer and a spec that keeps one package of it.
func manyPackages(tb testing.TB, n int) (*Observer, *spec.Config) {
	tb.Helper()
	reg := testenv.StartMemRegistry(tb)
	ref, _ := name.ParseReference(reg.Host + "/cat/many:v1")
	if err := remote.Write(ref, manyPackagesImage(tb, n)); err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	body := fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: many
spec:
  source: %[1]s/cat/many:v1
  target: %[1]s/built/many:v1
  packages:
    - name: pkg-%06[2]d
`, reg.Host, n/2)
	if err := os.WriteFile(filepath.Join(dir, "catalog.yaml"), []byte(body), 0o644); err != nil {
		tb.Fatal(err)
	}
	cfg, err := spec.Load(os.DirFS(dir), spec.DefaultLoadOptions())
	if err != nil {
		tb.Fatal(err)
	}
	auth := filepath.Join(tb.TempDir(), "auth.json")
	os.WriteFile(auth, []byte(`{"auths":{}}`), 0o600)
	obs := &Observer{Registry: mustClientTB(tb, auth), SpecDir: dir, TempDir: tb.TempDir()}
	return obs, cfg
}

// TestManyPackageDirectories: a catalog of package directories is read,
// filtered to one package and built.
func TestManyPackageDirectories(t *testing.T) {
	obs, cfg := manyPackages(t, 5000)
	plan, res, err := obs.Compute(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Catalogs) != 1 || len(res.Catalogs[0].Config.Packages) != 1 || res.Catalogs[0].Config.Packages[0].Name != "pkg-002500" {
		t.Errorf("rendered %+v", plan.Catalogs)
	}
	if _, ok := res.Files["catalogs/many/configs/pkg-002500/catalog.yaml"]; !ok {
		t.Errorf("files: %v", len(res.Files))
	}
}

// BenchmarkManyPackageDirectories is the time to read a catalog of 200,000
// package directories from a registry, load it, filter it to one package,
// render and build it: what took over 25 minutes through fstest.MapFS.
//
//	go test -run '^$' -bench ManyPackageDirectories -benchtime 1x ./reconcile
func BenchmarkManyPackageDirectories(b *testing.B) {
	for _, n := range []int{50_000, 200_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			obs, cfg := manyPackages(b, n)
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := obs.Compute(b.Context(), cfg, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
