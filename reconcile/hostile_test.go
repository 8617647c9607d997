package reconcile

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferry-gitops/ferry/internal/catalogimage"
	engine "github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/render"
	"github.com/ferry-gitops/ferry/render/mirror"
	"github.com/ferry-gitops/ferry/spec"
)

// hostile is two catalogs (a and b, one package each) and two additional
// images in an in-process source registry, and an in-process mirror, for
// running the plan phase and the catalog push against registries that lie
// and fail.
type hostile struct {
	src, dst *testenv.MemRegistry
	specDir  string
	tmp      string // the Observer's temporary directory
	cfg      *spec.Config
	obs      *Observer
	// layer and config of catalog a's image, its configs layer last.
	layers []v1.Hash
	config v1.Hash
	// raw manifest of catalog a's image.
	manifest []byte
}

// fastPolicy is the registry policy with waits a test can afford.
func fastPolicy() registry.RetryPolicy {
	return registry.RetryPolicy{Attempts: 4, Initial: time.Millisecond, Max: 5 * time.Millisecond,
		MaxRetryAfter: 5 * time.Second, StallTimeout: 300 * time.Millisecond, TransferAttempts: 3}
}

func newHostile(t *testing.T) *hostile {
	t.Helper()
	h := &hostile{src: testenv.StartMemRegistry(t), dst: testenv.StartMemRegistry(t), specDir: t.TempDir(), tmp: t.TempDir()}
	for _, c := range []string{"a", "b"} {
		bundleRef := h.push(t, "bundles/p"+c+":v1", randomImage(t))
		h.push(t, "op/p"+c+":v1", randomImage(t))
		fbcDoc := fmt.Sprintf(`---
schema: olm.package
name: p%[1]s
defaultChannel: stable
---
schema: olm.channel
package: p%[1]s
name: stable
entries:
  - name: p%[1]s.v1.0.0
---
schema: olm.bundle
name: p%[1]s.v1.0.0
package: p%[1]s
image: %[2]s
properties:
  - type: olm.package
    value:
      packageName: p%[1]s
      version: 1.0.0
relatedImages:
  - name: operator
    image: %[3]s/op/p%[1]s:v1
`, c, bundleRef, h.src.Host)
		img := catalogImage(t, map[string]string{"configs/p" + c + "/catalog.yaml": fbcDoc})
		h.push(t, "cat/"+c+":v1", img)
		if c == "a" {
			ls, _ := img.Layers()
			for _, l := range ls {
				d, _ := l.Digest()
				h.layers = append(h.layers, d)
			}
			h.config, _ = img.ConfigName()
			h.manifest, _ = img.RawManifest()
		}
	}
	h.push(t, "extra/tool:v1", randomImage(t))
	h.writeSpec(t, "")
	return h
}

// writeSpec writes the Mirror and both Catalogs; extraMirror is appended
// to the Mirror's spec.
func (h *hostile) writeSpec(t *testing.T, extraMirror string) {
	t.Helper()
	body := fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Mirror
metadata:
  name: lab
spec:
  registry: %[2]s/mirror
  additionalImages:
    - %[1]s/extra/tool:v1
%[3]s---
apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: a
spec:
  source: %[1]s/cat/a:v1
---
apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: b
spec:
  source: %[1]s/cat/b:v1
`, h.src.Host, h.dst.Host, extraMirror)
	if err := os.WriteFile(filepath.Join(h.specDir, "spec.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := spec.Load(os.DirFS(h.specDir), spec.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	auth := filepath.Join(t.TempDir(), "auth.json")
	os.WriteFile(auth, []byte(`{"auths":{}}`), 0o600)
	rc, err := registry.New(registry.Options{AuthFile: auth, Retry: fastPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	h.cfg = cfg
	h.obs = &Observer{Registry: rc, SpecDir: h.specDir, TempDir: h.tmp}
}

func (h *hostile) push(t *testing.T, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(h.src.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return ref.Context().Digest(d.String()).String()
}

// putManifest stores raw as a manifest of cat/a under tag.
func (h *hostile) putManifest(t *testing.T, tag string, raw []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+h.src.Host+"/v2/cat/a/manifests/"+tag, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("put manifest: %s", resp.Status)
	}
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// catalogImage is a base layer with an opm stand-in and a configs layer,
// labelled as opm labels FBC images.
func catalogImage(t *testing.T, files map[string]string) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, map[string]string{"bin/opm": "opm"}), tarLayer(t, files))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{catalogimage.LabelConfigs: "/configs"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func tarLayer(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range sortedKeys(files) {
		tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[p]))})
		io.WriteString(tw, files[p])
	}
	tw.Close()
	raw := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// outcome summarises a Compute for comparison.
func outcome(plan *Plan, res *Result) (built []string, failed map[string]string) {
	failed = map[string]string{}
	for _, f := range plan.Failures {
		failed[string(f.Kind)+" "+f.Name] = f.Reason
	}
	if res != nil {
		for _, img := range res.Images {
			built = append(built, img.Catalog)
		}
	}
	return built, failed
}

// TestPlanAgainstLyingRegistry runs the plan phase against a source
// registry that lies about content and sizes, stalls, resets, and throttles.
// Each case: the faults ride out or fail exactly the catalog they concern,
// with an error naming what and where, and nothing left on disk.
func TestPlanAgainstLyingRegistry(t *testing.T) {
	h := newHostile(t)
	configsLayer := h.layers[1].String()
	big := bytes.Replace(h.manifest, []byte(fmt.Sprintf(`"size":%d,"digest":"%s"`, configSize(t, h.manifest), h.config)),
		[]byte(fmt.Sprintf(`"size":%d,"digest":"%s"`, 3<<29, h.config)), 1)
	if bytes.Equal(big, h.manifest) {
		t.Fatal("could not rewrite the config size")
	}
	h.putManifest(t, "bigconfig", big)
	h.putManifest(t, "biglayer", rewriteLayerSize(t, h.manifest, configsLayer, 64<<20))
	h.putManifest(t, "hugelayer", rewriteLayerSize(t, h.manifest, configsLayer, 3<<30))

	for _, tc := range []struct {
		name   string
		source string // catalog a's source tag, "" for v1
		faults []testenv.Fault
		// failed maps "catalog a" to a fragment of its reason.
		failed map[string]string
		// faulted: how many requests each fault must have answered;
		// upTo, when set, allows up to that many (net/http itself sends a
		// request again, once, when a reused connection drops).
		faulted map[string]int
		upTo    int
	}{
		{name: "layer bytes swapped, same size",
			faults: []testenv.Fault{{Name: "swap", Match: testenv.BlobGET(configsLayer), Serve: testenv.Rewrite(testenv.FlipLastByte)}},
			failed: map[string]string{"catalog a": "layer 1 (" + configsLayer + "): content does not match its digest"},
			// A whole body with the wrong digest is not read again.
			faulted: map[string]int{"swap": 1}},
		{name: "layer is endless zeros",
			faults:  []testenv.Fault{{Name: "endless", Match: testenv.BlobGET(configsLayer), Serve: testenv.Endless}},
			failed:  map[string]string{"catalog a": "content does not match its digest"},
			faulted: map[string]int{"endless": 1}},
		{name: "layer's real bytes then an endless tail: read stops at the declared size",
			faults: []testenv.Fault{{Name: "tail", Match: testenv.BlobGET(configsLayer), Serve: testenv.EndlessAfterBody}},
			// Read, then the build checks the layer to drop it from the base.
			faulted: map[string]int{"tail": 2}},
		{name: "manifest is endless", source: "v1",
			faults:  []testenv.Fault{{Name: "endless", Match: testenv.Method("GET", "/cat/a/manifests/v1"), Serve: testenv.Endless}},
			failed:  map[string]string{"catalog a": "manifest http://" + h.src.Host + "/v2/cat/a/manifests/v1: larger than the 4194304-byte limit"},
			faulted: map[string]int{"endless": 1}},
		{name: "manifest declares a 1.5 GiB config, served endless", source: "bigconfig",
			faults:  []testenv.Fault{{Name: "endless", Match: testenv.BlobGET(h.config.String()), Serve: testenv.Endless}},
			failed:  map[string]string{"catalog a": "config " + h.config.String() + ": 1610612736 bytes exceeds the 4194304-byte limit"},
			faulted: map[string]int{"endless": 0}},
		{name: "manifest declares a 64 MiB layer, served endless", source: "biglayer",
			faults: []testenv.Fault{{Name: "endless", Match: testenv.BlobGET(configsLayer), Serve: testenv.Endless}},
			// Within the blob limit: read to its declared size on disk,
			// never in memory, and refused for its digest.
			failed:  map[string]string{"catalog a": "content does not match its digest: want " + configsLayer + ", got sha256:3b6a07d0d404fab4e23b6d34bc6696a6a312dd92821332385e5af7c01c421351 after 67108864 bytes"},
			faulted: map[string]int{"endless": 1}},
		{name: "manifest declares a 3 GiB layer", source: "hugelayer",
			faults:  []testenv.Fault{{Name: "endless", Match: testenv.BlobGET(configsLayer), Serve: testenv.Endless}},
			failed:  map[string]string{"catalog a": "layer 1 (" + configsLayer + "): 3221225472 bytes exceeds the 2147483648-byte limit"},
			faulted: map[string]int{"endless": 0}},
		{name: "reset mid-body twice, then served",
			faults:  []testenv.Fault{{Name: "reset", Match: testenv.BlobGET(configsLayer), Times: 2, Serve: testenv.ResetAfter(20)}},
			faulted: map[string]int{"reset": 2}},
		{name: "stall mid-body, then served",
			faults:  []testenv.Fault{{Name: "stall", Match: testenv.BlobGET(configsLayer), Times: 1, Serve: testenv.StallAfter(20)}},
			faulted: map[string]int{"stall": 1}},
		{name: "stall before the answer, then served",
			faults:  []testenv.Fault{{Name: "stall", Match: testenv.Method("GET", "/cat/a/manifests/v1"), Times: 1, Serve: testenv.Stall}},
			faulted: map[string]int{"stall": 1}},
		{name: "stalls forever",
			faults:  []testenv.Fault{{Name: "stall", Match: testenv.BlobGET(configsLayer), Serve: testenv.Stall}},
			failed:  map[string]string{"catalog a": "stalled: no progress for 300ms (after 4 attempts)"},
			faulted: map[string]int{"stall": 4}},
		{name: "resets forever",
			faults:  []testenv.Fault{{Name: "reset", Match: testenv.Method("GET", "/cat/a/manifests/v1"), Serve: testenv.Reset}},
			failed:  map[string]string{"catalog a": "(after 4 attempts)"},
			faulted: map[string]int{"reset": 4}, upTo: 5},
		{name: "503 burst",
			faults:  []testenv.Fault{{Name: "503", Match: testenv.BlobGET(""), Times: 3, Serve: testenv.Status(http.StatusServiceUnavailable)}},
			faulted: map[string]int{"503": 3}},
		{name: "429 with Retry-After",
			faults: []testenv.Fault{
				{Name: "429", Match: testenv.Method("GET", "/cat/a/manifests/v1"), Times: 1, Serve: testenv.TooManyRequests(1)},
				{Name: "after", Match: testenv.Method("GET", "/cat/a/manifests/v1"), Times: 1, Serve: testenv.Pass},
			},
			faulted: map[string]int{"429": 1, "after": 1}},
		{name: "source refused (401) is not retried",
			faults:  []testenv.Fault{{Name: "401", Match: testenv.Method("GET", "/cat/a/manifests/"), Serve: testenv.Status(http.StatusUnauthorized)}},
			failed:  map[string]string{"catalog a": "source " + h.src.Host + "/cat/a:v1: GET http://" + h.src.Host + "/v2/cat/a/manifests/v1: UNAUTHORIZED"},
			faulted: map[string]int{"401": 1}},
		{name: "additional image's tag unknown",
			faults:  []testenv.Fault{{Name: "404", Match: testenv.Method("", "/extra/tool/manifests/v1"), Serve: testenv.Status(http.StatusNotFound)}},
			failed:  map[string]string{"image " + h.src.Host + "/extra/tool:v1": "resolve: "},
			faulted: map[string]int{"404": 2}}, // HEAD, then GET for registries refusing HEAD
		{name: "a catalog's related image tag unknown",
			faults:  []testenv.Fault{{Name: "404", Match: testenv.Method("", "/op/pa/manifests/v1"), Serve: testenv.Status(http.StatusNotFound)}},
			failed:  map[string]string{"catalog a": "image " + h.src.Host + "/op/pa:v1: resolve: ", "image " + h.src.Host + "/op/pa:v1": "resolve: "},
			faulted: map[string]int{"404": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.obs.Registry = mustClient(t)
			src := tc.source
			if src == "" {
				src = "v1"
			}
			h.cfg.Catalogs[0].Spec.Source = h.src.Host + "/cat/a:" + src
			h.cfg.Catalogs[0].Spec.Base = h.cfg.Catalogs[0].Spec.Source
			f := testenv.NewFaults(tc.faults...)
			h.src.Inject(f)
			defer h.src.Intercept(nil)
			plan, res, err := h.obs.Compute(t.Context(), h.cfg, nil)
			var incomplete *IncompleteError
			if len(tc.failed) == 0 && err != nil {
				t.Fatalf("error %v\nfaults:\n%s", err, f)
			}
			if len(tc.failed) > 0 && !errors.As(err, &incomplete) {
				t.Fatalf("error %v, want an IncompleteError", err)
			}
			built, failed := outcome(plan, res)
			for what, frag := range tc.failed {
				if !strings.Contains(failed[what], frag) {
					t.Errorf("%s failed with %q, want %q", what, failed[what], frag)
				}
			}
			for what := range failed {
				if _, ok := tc.failed[what]; !ok {
					t.Errorf("%s failed unexpectedly: %s", what, failed[what])
				}
			}
			wantBuilt := []string{"a", "b"}
			if _, ok := tc.failed["catalog a"]; ok {
				wantBuilt = []string{"b"}
			}
			if strings.Join(built, ",") != strings.Join(wantBuilt, ",") {
				t.Errorf("built %v, want %v: the failure must concern only catalog a", built, wantBuilt)
			}
			for fault, n := range tc.faulted {
				if got := f.Count(fault); got != n && (got < n || got > tc.upTo) {
					t.Errorf("fault %s answered %d requests, want %d\n%s", fault, got, n, f)
				}
			}
			if log := f.Log(); tc.faulted["after"] == 1 && log[1].At.Sub(log[0].At) < time.Second {
				t.Errorf("came back %s after a 429 with Retry-After: 1", log[1].At.Sub(log[0].At))
			}
			if left, _ := os.ReadDir(h.tmp); len(left) != 0 {
				t.Errorf("left in the temporary directory: %v", left)
			}
			if res != nil && res.Mirror != nil {
				for _, img := range res.Mirror.Images {
					if tc.failed["image "+img.Source] != "" {
						t.Errorf("%s failed but is in the image set", img.Source)
					}
				}
			}
		})
	}
}

func mustClient(t *testing.T) *registry.Client {
	t.Helper()
	auth := filepath.Join(t.TempDir(), "auth.json")
	os.WriteFile(auth, []byte(`{"auths":{}}`), 0o600)
	return mustClientTB(t, auth)
}

// mustClientTB is a registry client with no credentials and fastPolicy.
func mustClientTB(tb testing.TB, authFile string) *registry.Client {
	tb.Helper()
	rc, err := registry.New(registry.Options{AuthFile: authFile, Retry: fastPolicy()})
	if err != nil {
		tb.Fatal(err)
	}
	return rc
}

func configSize(t *testing.T, raw []byte) int64 {
	t.Helper()
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return m.Config.Size
}

func rewriteLayerSize(t *testing.T, raw []byte, digest string, size int64) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, l := range m["layers"].([]any) {
		if l := l.(map[string]any); l["digest"] == digest {
			l["size"] = size
		}
	}
	out, _ := json.Marshal(m)
	return out
}

// TestFailedCatalogKeepsPreviousRender: a catalog whose source cannot be
// read keeps its previous files, image and mirror entries, the other
// catalog moves on, and a tag that cannot be resolved keeps the digest the
// previous lock recorded.
func TestFailedCatalogKeepsPreviousRender(t *testing.T) {
	h := newHostile(t)
	h.obs.Registry = mustClient(t)
	_, first, err := h.obs.Compute(t.Context(), h.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	previous := t.TempDir()
	for p, b := range first.Files {
		os.MkdirAll(filepath.Dir(filepath.Join(previous, p)), 0o755)
		os.WriteFile(filepath.Join(previous, p), b, 0o644)
	}
	f := testenv.NewFaults(
		testenv.Fault{Name: "a gone", Match: testenv.Method("", "/cat/a/manifests/"), Serve: testenv.Status(http.StatusNotFound)},
		testenv.Fault{Name: "tool gone", Match: testenv.Method("", "/extra/tool/manifests/"), Serve: testenv.Status(http.StatusNotFound)},
	)
	h.src.Inject(f)
	plan, res, err := h.obs.Compute(t.Context(), h.cfg, os.DirFS(previous))
	var incomplete *IncompleteError
	if !errors.As(err, &incomplete) || len(incomplete.Failures) != 2 {
		t.Fatalf("error %v, want catalog a and the additional image failed", err)
	}
	for _, p := range []string{render.CatalogSourceFile("a"), "catalogs/a/configs/pa/catalog.yaml"} {
		if !bytes.Equal(res.Files[p], first.Files[p]) {
			t.Errorf("%s changed although catalog a failed", p)
		}
	}
	if c := plan.Catalogs[0]; c.Name != "a" || c.Failed == "" || c.Action != Unchanged || c.Image != first.Images[0].Pinned {
		t.Errorf("catalog a in the plan: %+v", c)
	}
	tool := h.src.Host + "/extra/tool:v1"
	if img := res.Mirror.Image(tool); img == nil || img.Digest != first.Mirror.Image(tool).Digest {
		t.Errorf("%s left the image set instead of keeping its previous digest", tool)
	}
	for _, fl := range plan.Failures {
		if fl.Kind == FailedImage && !strings.Contains(fl.Kept, first.Mirror.Image(tool).Digest) {
			t.Errorf("image failure %+v does not say it keeps the previous digest", fl)
		}
	}
	for _, src := range []string{h.src.Host + "/op/pa:v1", h.src.Host + "/op/pb:v1"} {
		if res.Mirror.Image(src) == nil {
			t.Errorf("%s missing from the image set: both catalogs' images stay mirrored", src)
		}
	}
	lock := func(files map[string][]byte) *mirror.Lock {
		l, err := mirror.ReadLock(bytes.NewReader(files[mirror.LockFile]))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if diff := cmp.Diff(lock(first.Files).Catalogs, lock(res.Files).Catalogs); diff != "" {
		t.Errorf("the lock's catalogs changed although catalog a failed and b did not change (-before +after):\n%s", diff)
	}
	var text bytes.Buffer
	plan.WriteText(&text)
	if !strings.Contains(text.String(), "Catalog/a: failed, keeps its previous render: source "+h.src.Host+"/cat/a:v1") || !strings.Contains(text.String(), "Incomplete: 2 part(s)") {
		t.Errorf("plan text:\n%s", text.String())
	}
}

// TestCheckMirrorStopsOnDeadMirror: a mirror that resets every request is
// asked about once per slot, not once per image.
func TestCheckMirrorStopsOnDeadMirror(t *testing.T) {
	h := newHostile(t)
	h.obs.Registry = mustClient(t)
	_, res, err := h.obs.Compute(t.Context(), h.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := testenv.NewFaults(testenv.Fault{Name: "reset", Serve: testenv.Reset})
	h.dst.Inject(f)
	cp := h.obs.CheckMirror(t.Context(), res.Mirror)
	if cp.Unchecked == "" || !strings.Contains(cp.Unchecked, h.dst.Host) {
		t.Errorf("unchecked %q, want the mirror named", cp.Unchecked)
	}
	if n, most := f.Count("reset"), checkConcurrency*fastPolicy().Attempts; n > most {
		t.Errorf("%d requests to a dead mirror, want at most %d", n, most)
	}
}

// TestCatalogPushRidesOutFaults pushes built catalog images through a
// mirror that throttles, fails and resets uploads; a mirror that refuses
// every manifest fails the push, holds the catalogs back, and the error
// names the target.
func TestCatalogPushRidesOutFaults(t *testing.T) {
	h := newHostile(t)
	h.obs.Registry = mustClient(t)
	_, res, err := h.obs.Compute(t.Context(), h.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := ApplyOptions{Copy: engine.DefaultOptions(nil)}
	opts.Copy.Retry = fastPolicy()
	f := testenv.NewFaults(
		testenv.Fault{Name: "429", Match: testenv.Method("POST", "/blobs/uploads/"), Times: 2, Serve: testenv.TooManyRequests(1)},
		testenv.Fault{Name: "reset", Match: testenv.Method("PATCH", "/blobs/uploads/"), Times: 2, Serve: testenv.ResetAfter(0)},
		testenv.Fault{Name: "503", Match: testenv.Method("PUT", "/manifests/"), Times: 3, Serve: testenv.Status(http.StatusServiceUnavailable)},
	)
	h.dst.Inject(f)
	out, err := h.obs.Apply(t.Context(), res, nil, opts)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, f)
	}
	for _, c := range out.Catalogs {
		if !c.Pushed {
			t.Errorf("catalog %s not pushed", c.Name)
		}
		ref, _ := name.ParseReference(c.Image)
		if _, err := remote.Head(ref); err != nil {
			t.Errorf("catalog %s: %v", c.Name, err)
		}
	}
	for fault, n := range map[string]int{"429": 2, "reset": 2, "503": 3} {
		if f.Count(fault) != n {
			t.Errorf("fault %s answered %d requests, want %d", fault, f.Count(fault), n)
		}
	}

	// A mirror refusing every catalog manifest: both held, nothing pushed.
	h2 := newHostile(t)
	h2.obs.Registry = mustClient(t)
	_, res, err = h2.obs.Compute(t.Context(), h2.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h2.dst.Inject(testenv.NewFaults(testenv.Fault{Name: "500", Match: testenv.Method("PUT", "/mirror/cat/"), Serve: testenv.Status(http.StatusInternalServerError)}))
	out, err = h2.obs.Apply(t.Context(), res, nil, opts)
	var held *HeldError
	if !errors.As(err, &held) || len(held.PushErrors) != 2 {
		t.Fatalf("apply against a refusing mirror: %v", err)
	}
	if msg := held.PushErrors[0].Error(); !strings.Contains(msg, "catalog a: push "+h2.dst.Host+"/mirror/cat/a:v1") {
		t.Errorf("push error %q does not name the catalog and its target", msg)
	}
	for _, c := range out.Catalogs {
		if c.Pushed || c.Held == "" {
			t.Errorf("catalog %+v pushed or not held", c)
		}
		if _, ok := out.Files[render.CatalogSourceFile(c.Name)]; ok {
			t.Errorf("catalog %s: a CatalogSource is rendered for an image never pushed", c.Name)
		}
	}
}
