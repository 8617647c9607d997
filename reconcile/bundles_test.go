package reconcile

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/bundle"
	"github.com/ferry-gitops/ferry/internal/catalogimage"
	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
	"github.com/ferry-gitops/ferry/spec"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// kokuDir is the real koku-metrics-operator 4.4.1 bundle; koku is also a
// package of the real community v4.20 catalog.
func kokuDir(t *testing.T) string {
	return filepath.Join(testenv.RepoRoot(t), "testdata/bundles/community__koku-metrics-operator__4.4.1")
}

// kokuVariant copies the real koku bundle, renamed to version, or with
// respin the same 4.4.1 rebuilt with another description; either way its
// CSV's replaces is removed, as a package published from an FBC template
// has it.
func kokuVariant(t *testing.T, version string, respin bool) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(kokuDir(t))); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(dst, "manifests", "koku-metrics-operator.clusterserviceversion.yaml")
	data, err := os.ReadFile(csv)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if respin {
		s = strings.Replace(s, "## New in v4.4.1:", "## New in v4.4.1 (rebuilt):", 1)
	} else {
		s = strings.Replace(s, "name: koku-metrics-operator.v4.4.1", "name: koku-metrics-operator.v"+version, 1)
		s = strings.Replace(s, "\n  version: 4.4.1\n", "\n  version: "+version+"\n", 1)
	}
	s = strings.Replace(s, "  replaces: koku-metrics-operator.v4.4.0\n", "", 1)
	if err := os.WriteFile(csv, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// bundleWorld is a source catalog directory (the real community koku and
// kubevirt-wol packages), a base image and bundle images in an in-process
// registry.
type bundleWorld struct {
	reg     *testenv.MemRegistry
	specDir string
	base    string
	obs     *Observer
}

func newBundleWorld(t *testing.T) *bundleWorld {
	t.Helper()
	w := &bundleWorld{reg: testenv.StartMemRegistry(t), specDir: t.TempDir()}
	all, err := world.OpenCatalogArchive(filepath.Join(testenv.RepoRoot(t), "testdata/fbc/large/community-operators-prod-catalogs-v4.20.tar.gz"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"koku-metrics-operator", "kubevirt-wol"} {
		data, err := fs.ReadFile(all, p+"/catalog.yaml")
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(w.specDir, "source", p)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "catalog.yaml"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.base = w.reg.Host + "/base/opm:v1"
	base, err := mutate.Config(empty.Image, v1.Config{Entrypoint: []string{"/bin/opm"}})
	if err != nil {
		t.Fatal(err)
	}
	w.push(t, w.base, base)
	rc, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.obs = &Observer{Registry: rc, SpecDir: w.specDir, Limits: catalogimage.DefaultLimits()}
	return w
}

func (w *bundleWorld) push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func (w *bundleWorld) pushBundle(t *testing.T, dir, repoTag string) string {
	t.Helper()
	ref := w.reg.Host + "/" + repoTag
	if _, err := world.PushBundleDir(t.Context(), dir, ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func (w *bundleWorld) load(t *testing.T, body string) *spec.Config {
	t.Helper()
	if err := os.WriteFile(filepath.Join(w.specDir, "catalog.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := spec.Load(os.DirFS(w.specDir), spec.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// plainText replaces what changes from run to run (the registry's port)
// so plans compare with golden files.
func (w *bundleWorld) plainText(s string) string {
	return strings.ReplaceAll(s, w.reg.Host, "registry.test")
}

// TestPlanShowsInferredEdges adds the next koku release (no replaces in
// its CSV) to the real koku package and tempo-operator, a package only the
// bundles provide and the spec selects, and compares the plan with
// testdata/inferred-edges.golden: the new head, the inferred edge with its
// spec.bundles position and file:line, the new package.
func TestPlanShowsInferredEdges(t *testing.T) {
	w := newBundleWorld(t)
	koku := w.pushBundle(t, kokuVariant(t, "4.4.2", false), "bundles/koku-metrics-operator:v4.4.2")
	tempo := w.pushBundle(t, filepath.Join(testenv.RepoRoot(t), "testdata/bundles/community__tempo-operator__0.22.0"), "bundles/tempo-operator:v0.22.0")
	cfg := w.load(t, fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community
spec:
  source: ./source
  base: %s
  target: %s/olm/community:v4.20
  packages:
    - name: koku-metrics-operator
    - name: tempo-operator
      channels:
        - name: alpha
  bundles:
    - %s
    - image: %s
      addMode: semver
`, w.base, w.reg.Host, koku, tempo))
	// The previous render: the same catalog without the bundles.
	prevCfg := *cfg
	prevCat := *cfg.Catalogs[0]
	prevCat.Spec.Bundles = nil
	prevCat.Spec.Packages = prevCat.Spec.Packages[:1]
	prevCfg.Catalogs = []*spec.Catalog{&prevCat}
	_, prevRes, err := w.obs.Compute(t.Context(), &prevCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	previous := fstest.MapFS{}
	for p, data := range prevRes.Files {
		previous[p] = &fstest.MapFile{Data: data}
	}
	plan, res, err := w.obs.Compute(t.Context(), cfg, previous)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := plan.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	got := w.plainText(buf.String())
	got = regexp.MustCompile(`sha256:[0-9a-f]{64}`).ReplaceAllString(got, "sha256:…")
	compareGolden(t, "testdata/inferred-edges.golden", got)

	edges := plan.Catalogs[0].Packages[0].InferredEdges
	reason := "the bundle names no replaces or skips and its version 4.4.2 is above the channel head's (4.4.1)"
	want := []InferredEdge{
		{Channel: "alpha", Bundle: "koku-metrics-operator.v4.4.2", Replaces: "koku-metrics-operator.v4.4.1", Mode: "replaces", Reason: reason, Origin: "spec.bundles[0] (catalog.yaml:15)"},
		{Channel: "beta", Bundle: "koku-metrics-operator.v4.4.2", Replaces: "koku-metrics-operator.v4.4.1", Mode: "replaces", Reason: reason, Origin: "spec.bundles[0] (catalog.yaml:15)"},
	}
	if diff := cmp.Diff(want, edges); diff != "" {
		t.Errorf("inferred edges (-want +got):\n%s", diff)
	}
	validateRendered(t, res)
}

// validateRendered writes the rendered configs and runs the real opm
// validate on them.
func validateRendered(t *testing.T, res *Result) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		return
	}
	dir := t.TempDir()
	for p, data := range res.Files {
		if !strings.HasSuffix(p, "catalog.yaml") || !strings.Contains(p, "/configs/") {
			continue
		}
		f := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "catalogs", "*", "configs"))
	if len(matches) == 0 {
		t.Fatal("no rendered configs")
	}
	for _, m := range matches {
		if out, stderr, err := testenv.RunOPM(t, "validate", m); err != nil {
			t.Errorf("opm validate %s: %v\n%s%s", m, err, out, stderr)
		}
	}
}

func compareGolden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", file, diff)
	}
}

// TestEveryBadBundleAtOnce: a respin without replaceExisting, a bundle
// below the head in replaces mode, a semver collision with another
// spec.bundles entry and an image that does not exist, in one error, each
// by position and line; then the respin with replaceExisting renders.
func TestEveryBadBundleAtOnce(t *testing.T) {
	w := newBundleWorld(t)
	respin := w.pushBundle(t, kokuVariant(t, "", true), "bundles/koku-metrics-operator:v4.4.1-1")
	below := w.pushBundle(t, kokuVariant(t, "4.3.9", false), "bundles/koku-metrics-operator:v4.3.9")
	next := w.pushBundle(t, kokuVariant(t, "4.4.2", false), "bundles/koku-metrics-operator:v4.4.2")
	twinDir := kokuVariant(t, "4.4.2", false)
	renameCSV(t, twinDir, "koku-metrics-operator.v4.4.2", "koku-metrics-operator.v4.4.2-twin")
	twin := w.pushBundle(t, twinDir, "bundles/koku-metrics-operator:v4.4.2-twin")
	body := `apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community
spec:
  source: ./source
  base: %s
  target: %s/olm/community:v4.20
  packages:
    - name: koku-metrics-operator
  bundles:
    - %s
    - %s
    - %s
    - image: %s
      addMode: semver
    - %s/bundles/missing:v1
`
	cfg := w.load(t, fmt.Sprintf(body, w.base, w.reg.Host, respin, below, next, twin, w.reg.Host))
	_, _, err := w.obs.Compute(t.Context(), cfg, nil)
	var addErr *bundle.Error
	if !errors.As(err, &addErr) {
		t.Fatalf("got %v, want a *bundle.Error", err)
	}
	msg := w.plainText(err.Error())
	for _, want := range []string{
		"4 of the bundles cannot be added",
		`spec.bundles[0] (catalog.yaml:12): bundle "koku-metrics-operator.v4.4.1" of package "koku-metrics-operator":`,
		`already has a bundle named "koku-metrics-operator.v4.4.1", from the source catalog (image quay.io/`,
		"if this is a rebuild of it, set replaceExisting to replace it",
		`spec.bundles[1] (catalog.yaml:13): bundle "koku-metrics-operator.v4.3.9"`,
		`its version 4.3.9 is below the channel head "koku-metrics-operator.v4.4.1" (4.4.1)`,
		`set addMode to "semver"`,
		`spec.bundles[3] (catalog.yaml:15): bundle "koku-metrics-operator.v4.4.2-twin"`,
		`already has version 4.4.2: bundle "koku-metrics-operator.v4.4.2", from spec.bundles[2] (catalog.yaml:14)`,
		`spec.bundles[4] (catalog.yaml:17): registry.test/bundles/missing:v1:`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "spec.bundles[2]:") {
		t.Errorf("the good bundle is reported:\n%s", msg)
	}

	// The respin, told: it takes 4.4.1's place and keeps its edges.
	cfg = w.load(t, fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community
spec:
  source: ./source
  base: %s
  target: %s/olm/community:v4.20
  packages:
    - name: koku-metrics-operator
  bundles:
    - image: %s
      replaceExisting: true
`, w.base, w.reg.Host, respin))
	plan, res, err := w.obs.Compute(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := res.Catalogs[0].Config
	if len(got.Bundles) != 1 || !strings.Contains(got.Bundles[0].Image, "registry.test") && !strings.Contains(got.Bundles[0].Image, w.reg.Host) {
		t.Errorf("bundles %v, want the rebuilt 4.4.1 alone", bundleImages(got))
	}
	if e := plan.Catalogs[0].Packages[0].InferredEdges; len(e) == 0 || !strings.Contains(e[0].Reason, "replaceExisting") {
		t.Errorf("inferred edges %v, want the kept edges of the replaced bundle", e)
	}
	validateRendered(t, res)
}

func renameCSV(t *testing.T, dir, from, to string) {
	t.Helper()
	csv := filepath.Join(dir, "manifests", "koku-metrics-operator.clusterserviceversion.yaml")
	data, err := os.ReadFile(csv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(csv, bytes.Replace(data, []byte("name: "+from), []byte("name: "+to), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func bundleImages(cfg *fbc.DeclarativeConfig) []string {
	var out []string
	for _, b := range cfg.Bundles {
		out = append(out, b.Name+"="+b.Image)
	}
	return out
}

// TestOCILayoutSourceRendersAsRegistry builds a catalog image, pushes it
// and writes the same image into an OCI layout next to the spec: a Catalog
// reading the layout renders the same files and builds the same image
// digest as one reading the registry, bundles from a layout are added with
// their objects, and a layout whose layer was altered is refused.
func TestOCILayoutSourceRendersAsRegistry(t *testing.T) {
	w := newBundleWorld(t)
	baseRef, err := name.ParseReference(w.base)
	if err != nil {
		t.Fatal(err)
	}
	base, err := remote.Image(baseRef)
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := catalogimage.Build(base, os.DirFS(filepath.Join(w.specDir, "source")), catalogimage.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.push(t, w.reg.Host+"/redhat/community-operator-index:v4.20", catalog)
	writeLayout(t, filepath.Join(w.specDir, "layouts", "index"), catalog, "v4.20")
	bundleImg, err := world.BundleDirImage(kokuVariant(t, "4.4.2", false))
	if err != nil {
		t.Fatal(err)
	}
	writeLayout(t, filepath.Join(w.specDir, "layouts", "koku-bundle"), bundleImg, "v4.4.2")

	render := func(source string) (*Plan, *Result) {
		t.Helper()
		cfg := w.load(t, fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community
spec:
  source: %s
  target: %s/olm/community:v4.20
  packages:
    - name: koku-metrics-operator
  bundles:
    - oci://layouts/koku-bundle:v4.4.2
`, source, w.reg.Host))
		plan, res, err := w.obs.Compute(t.Context(), cfg, nil)
		if err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		return plan, res
	}
	regPlan, regRes := render(w.reg.Host + "/redhat/community-operator-index:v4.20")
	ociPlan, ociRes := render("oci://layouts/index:v4.20")
	if diff := cmp.Diff(regRes.Files, ociRes.Files); diff != "" {
		t.Errorf("rendered files differ between registry and layout (-registry +layout):\n%s", diff)
	}
	if regPlan.Catalogs[0].Image != ociPlan.Catalogs[0].Image {
		t.Errorf("built image %s from the registry, %s from the layout", regPlan.Catalogs[0].Image, ociPlan.Catalogs[0].Image)
	}
	var added *fbc.Bundle
	for i, b := range ociRes.Catalogs[0].Config.Bundles {
		if b.Name == "koku-metrics-operator.v4.4.2" {
			added = &ociRes.Catalogs[0].Config.Bundles[i]
		}
	}
	if added == nil || added.Image != "" || !hasProperty(added, fbc.PropertyBundleObject) {
		t.Errorf("bundle from a layout: %+v, want no image and its objects", added)
	}
	validateRendered(t, ociRes)

	// Alter the largest blob of the catalog layout: refused, by digest.
	blobs, _ := filepath.Glob(filepath.Join(w.specDir, "layouts", "index", "blobs", "sha256", "*"))
	var biggest string
	var size int64
	for _, b := range blobs {
		if fi, err := os.Stat(b); err == nil && fi.Size() > size {
			biggest, size = b, fi.Size()
		}
	}
	data, err := os.ReadFile(biggest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(biggest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := w.load(t, fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community
spec:
  source: oci://layouts/index:v4.20
  target: %s/olm/community:v4.20
`, w.reg.Host))
	if _, _, err := w.obs.Compute(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("altered layout: got %v, want a digest mismatch", err)
	}
}

func hasProperty(b *fbc.Bundle, typ string) bool {
	for _, p := range b.Properties {
		if p.Type == typ {
			return true
		}
	}
	return false
}

// writeLayout writes img into a new OCI layout at dir under tag, as
// skopeo copy ... oci:DIR:TAG does.
func writeLayout(t *testing.T, dir string, img v1.Image, tag string) {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: tag})); err != nil {
		t.Fatal(err)
	}
}
