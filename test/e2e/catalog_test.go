package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/catalogimage"
	"github.com/ferry-gitops/ferry/internal/cli"
	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
	"github.com/ferry-gitops/ferry/reconcile"
	"github.com/ferry-gitops/ferry/spec"
)

// communityWorld pushes a world built from some real community v4.20
// packages to a real registry and returns the registry and the catalog's
// tag reference.
func communityWorld(t *testing.T, packages ...string) (*testenv.Registry, *world.World) {
	t.Helper()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	root := testenv.RepoRoot(t)
	all, err := world.OpenCatalogArchive(filepath.Join(root, "testdata/fbc/large/community-operators-prod-catalogs-v4.20.tar.gz"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sub := t.TempDir()
	for _, p := range packages {
		data, err := fs.ReadFile(all, p+"/catalog.yaml")
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(sub, p), 0o755)
		os.WriteFile(filepath.Join(sub, p, "catalog.yaml"), data, 0o644)
	}
	opts := world.DefaultOptions(reg.Host)
	opts.CatalogRepository = "redhat/community-operator-index"
	opts.CatalogTag = "v4.20"
	w, err := world.Build(t.Context(), os.DirFS(sub), opts)
	if err != nil {
		t.Fatal(err)
	}
	return reg, w
}

func writeSpec(t *testing.T, dir, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "catalog.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ferry(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := cli.NewRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	code = cli.ExitCode(root.ExecuteContext(t.Context()), &errOut)
	return out.String(), errOut.String(), code
}

// TestCatalogFilterBuildServe renders a filtered catalog from a real
// registry, validates it with real opm, pushes the built image, serves its
// configs with real opm serve and asks over gRPC what OLM would ask.
func TestCatalogFilterBuildServe(t *testing.T) {
	reg, w := communityWorld(t, "koku-metrics-operator", "infinispan", "nfs-provisioner-operator", "kubevirt-wol")
	specDir, out := t.TempDir(), t.TempDir()
	target := reg.Host + "/olm/community-operators:v4.20"
	writeSpec(t, specDir, fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community
spec:
  source: %s
  target: %s
  packages:
    - name: koku-metrics-operator
      minVersion: 4.0.0
      maxVersion: 4.4.1
    - name: infinispan
      defaultChannel: 2.4.x
      channels:
        - name: 2.4.x
    - name: nfs-provisioner-operator
`, w.CatalogTag, target))

	stdout, stderr, code := ferry(t, "render", specDir, "-o", out)
	if code != 0 {
		t.Fatalf("ferry render: exit %d\n%s\n%s", code, stdout, stderr)
	}
	configs := filepath.Join(out, "catalogs/community/configs")
	if o, e, err := testenv.RunOPM(t, "validate", configs); err != nil {
		t.Fatalf("opm validate rejected the render: %v\n%s%s", err, o, e)
	}
	rendered, err := fbc.LoadFS(t.Context(), os.DirFS(configs))
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]bool{}
	for _, p := range rendered.Packages {
		pkgs[p.Name] = true
	}
	if diff := cmp.Diff(map[string]bool{"koku-metrics-operator": true, "infinispan": true, "nfs-provisioner-operator": true}, pkgs); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	for _, b := range rendered.Bundles {
		if b.Package == "koku-metrics-operator" && !strings.Contains(b.Name, ".v4.") {
			t.Errorf("bundle %s outside the 4.0.0-4.4.1 range", b.Name)
		}
	}

	// Build again through the API to push what render computed, then
	// check the CatalogSource pins exactly that image.
	cfg, err := spec.Load(os.DirFS(specDir), spec.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	rc, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obs := &reconcile.Observer{Registry: rc, SpecDir: specDir, Limits: catalogimage.DefaultLimits()}
	_, res, err := obs.Compute(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	built := res.Images[0]
	ref, _ := name.ParseReference(built.Pinned)
	if err := remote.Push(ref, built.Image, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push %s: %v", built.Pinned, err)
	}
	cs, _ := os.ReadFile(filepath.Join(out, "catalogs/community/catalogsource.yaml"))
	if !strings.Contains(string(cs), "image: "+built.Pinned) {
		t.Errorf("catalogsource.yaml does not pin the built image %s:\n%s", built.Pinned, cs)
	}

	// Pull the pushed image back, serve its /configs with real opm and ask
	// over gRPC.
	img, err := remote.Image(ref, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	contents, err := catalogimage.Read(t.Context(), img, catalogimage.ReadOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer contents.Close()
	served := t.TempDir()
	if err := os.CopyFS(served, contents.FS); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	got := serveAndQuery(t, served, cf.Config.Cmd)
	want := expectedAnswers(rendered)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("gRPC answers differ from the filtered model (-want +got):\n%s", diff)
	}
}

type queryChannel struct {
	Name   string `json:"name"`
	Head   string `json:"head"`
	Bundle string `json:"bundle"`
}

type queryPackage struct {
	Name           string         `json:"name"`
	DefaultChannel string         `json:"defaultChannel"`
	Channels       []queryChannel `json:"channels"`
}

// expectedAnswers is what OLM should hear from a catalog serving cfg: each
// channel's head is what GetBundleForChannel returns.
func expectedAnswers(cfg *fbc.DeclarativeConfig) []queryPackage {
	byPkg := map[string]*queryPackage{}
	var names []string
	for _, p := range cfg.Packages {
		byPkg[p.Name] = &queryPackage{Name: p.Name, DefaultChannel: p.DefaultChannel}
		names = append(names, p.Name)
	}
	for _, ch := range cfg.Channels {
		head := strings.Join(fbc.ChannelHeads(ch.Entries), ",")
		byPkg[ch.Package].Channels = append(byPkg[ch.Package].Channels, queryChannel{Name: ch.Name, Head: head, Bundle: head})
	}
	sort.Strings(names)
	out := []queryPackage{}
	for _, n := range names {
		p := byPkg[n]
		sort.Slice(p.Channels, func(i, j int) bool { return p.Channels[i].Name < p.Channels[j].Name })
		out = append(out, *p)
	}
	return out
}

// serveAndQuery runs real opm with the image's own command, its paths
// mapped onto dir (for /configs) and a fresh directory (for /tmp/cache), as
// the catalog pod would run it, and queries it.
func serveAndQuery(t *testing.T, dir string, cmd []string) []queryPackage {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cache := filepath.Join(t.TempDir(), "cache")
	var args []string
	for _, a := range cmd {
		a = strings.ReplaceAll(a, catalogimage.CacheDir, cache)
		args = append(args, strings.ReplaceAll(a, catalogimage.ConfigsDir, dir))
	}
	serve := exec.CommandContext(ctx, testenv.OPM(t), append(args, "-p", fmt.Sprint(port))...)
	var serveLog bytes.Buffer
	serve.Stdout, serve.Stderr = &serveLog, &serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); serve.Wait() }()
	q := exec.CommandContext(ctx, testenv.Tool(t, "catalog-query"), "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-timeout", (90 * time.Second).String())
	var qerr bytes.Buffer
	q.Stderr = &qerr
	outb, err := q.Output()
	if err != nil {
		t.Fatalf("catalog-query: %v: %s\nopm serve log:\n%s", err, qerr.String(), serveLog.String())
	}
	var got []queryPackage
	if err := json.Unmarshal(outb, &got); err != nil {
		t.Fatalf("catalog-query output: %v\n%s", err, outb)
	}
	return got
}

// TestCatalogFromSQLiteIndex converts a SQLite index image (what
// `opm index add` built) and checks real opm accepts the FBC it becomes.
func TestCatalogFromSQLiteIndex(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	root := testenv.RepoRoot(t)
	opts := world.DefaultOptions(reg.Host)
	opts.CatalogRepository = "redhat/okd-index"
	opts.CatalogTag = "v4.6"
	w, err := world.BuildSQLiteIndex(t.Context(), os.DirFS(filepath.Join(root, "testdata/fbc/small/okderators-catalog-index/catalog")), opts)
	if err != nil {
		t.Fatal(err)
	}
	specDir, out := t.TempDir(), t.TempDir()
	writeSpec(t, specDir, fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: okd
spec:
  source: %s
  target: %s/olm/okd:v4.6
`, w.CatalogTag, reg.Host))
	stdout, stderr, code := ferry(t, "render", specDir, "-o", out)
	if code != 0 {
		t.Fatalf("ferry render: exit %d\n%s\n%s", code, stdout, stderr)
	}
	configs := filepath.Join(out, "catalogs/okd/configs")
	if o, e, err := testenv.RunOPM(t, "validate", configs); err != nil {
		t.Fatalf("opm validate: %v\n%s%s", err, o, e)
	}
	got, err := fbc.LoadFS(t.Context(), os.DirFS(configs))
	if err != nil {
		t.Fatal(err)
	}
	want, err := fbc.LoadFS(t.Context(), w.Configs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(bundleNames(want), bundleNames(got)); diff != "" {
		t.Errorf("bundles (-index +converted):\n%s", diff)
	}
}

func bundleNames(cfg *fbc.DeclarativeConfig) []string {
	var out []string
	for _, b := range cfg.Bundles {
		out = append(out, b.Package+"/"+b.Name)
	}
	sort.Strings(out)
	return out
}

// TestCatalogAddsRealBundles adds real registry+v1 bundle images to a
// catalog, what `opm index add --bundles` did.
func TestCatalogAddsRealBundles(t *testing.T) {
	reg, w := communityWorld(t, "kubevirt-wol")
	root := testenv.RepoRoot(t)
	var refs []string
	for _, b := range []string{"community__koku-metrics-operator__4.4.1", "community__tempo-operator__0.22.0"} {
		ref := reg.Host + "/bundles/" + strings.Split(b, "__")[1] + ":" + strings.Split(b, "__")[2]
		if _, err := world.PushBundleDir(t.Context(), filepath.Join(root, "testdata/bundles", b), ref); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	specDir, out := t.TempDir(), t.TempDir()
	writeSpec(t, specDir, fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: extended
spec:
  source: %s
  target: %s/olm/extended:v1
  packages:
    - name: kubevirt-wol
  bundles:
    - %s
    - %s
`, w.CatalogTag, reg.Host, refs[0], refs[1]))
	stdout, stderr, code := ferry(t, "render", specDir, "-o", out)
	if code != 0 {
		t.Fatalf("ferry render: exit %d\n%s\n%s", code, stdout, stderr)
	}
	configs := filepath.Join(out, "catalogs/extended/configs")
	if o, e, err := testenv.RunOPM(t, "validate", configs); err != nil {
		t.Fatalf("opm validate: %v\n%s%s", err, o, e)
	}
	got, err := fbc.LoadFS(t.Context(), os.DirFS(configs))
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]string{}
	for _, b := range got.Bundles {
		images[b.Name] = b.Image
	}
	for _, n := range []string{"koku-metrics-operator.v4.4.1", "tempo-operator.v0.22.0"} {
		if !strings.Contains(images[n], reg.Host+"/bundles/") || !strings.Contains(images[n], "@sha256:") {
			t.Errorf("added bundle %s: image %q, want the pushed bundle pinned by digest", n, images[n])
		}
	}
}

// TestDiffAndDryRun checks diff's kubectl-style exit codes against a
// previous render and that --dry-run changes nothing: no registry
// repository, no file.
func TestDiffAndDryRun(t *testing.T) {
	reg, w := communityWorld(t, "kubevirt-wol", "nfs-provisioner-operator")
	specDir := t.TempDir()
	body := fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: small
spec:
  source: %s
  target: %s/olm/small:v1
  packages:
    - name: kubevirt-wol
`, w.CatalogTag, reg.Host)
	writeSpec(t, specDir, body)
	if _, stderr, code := ferry(t, "diff", specDir); code != 1 {
		t.Fatalf("diff before any render: exit %d, want 1\n%s", code, stderr)
	}
	if _, stderr, code := ferry(t, "render", specDir, "-o", filepath.Join(specDir, "rendered")); code != 0 {
		t.Fatalf("render: exit %d\n%s", code, stderr)
	}
	stdout, stderr, code := ferry(t, "diff", specDir)
	if code != 0 {
		t.Fatalf("diff right after render: exit %d, want 0\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "Plan: 0 of 1 catalog(s) to change") {
		t.Errorf("plan text:\n%s", stdout)
	}
	writeSpec(t, specDir, body+"    - name: nfs-provisioner-operator\n")
	before := snapshot(t, specDir)
	repos := repositories(t, reg.Host)
	stdout, _, code = ferry(t, "diff", specDir)
	if code != 1 || !strings.Contains(stdout, "package nfs-provisioner-operator: create") {
		t.Errorf("diff after adding a package: exit %d\n%s", code, stdout)
	}
	stdout, stderr, code = ferry(t, "reconcile", "--dry-run", specDir)
	if code != 0 || !strings.Contains(stdout, "+ nfs-provisioner-operator.") {
		t.Errorf("reconcile --dry-run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if diff := cmp.Diff(before, snapshot(t, specDir)); diff != "" {
		t.Errorf("dry run or diff changed files:\n%s", diff)
	}
	if diff := cmp.Diff(repos, repositories(t, reg.Host)); diff != "" {
		t.Errorf("dry run or diff wrote to the registry:\n%s", diff)
	}
	if _, _, code := ferry(t, "diff", filepath.Join(specDir, "missing")); code != 2 {
		t.Errorf("diff on a missing directory: exit %d, want 2", code)
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

func repositories(t *testing.T, host string) []string {
	t.Helper()
	r, err := name.NewRegistry(host)
	if err != nil {
		t.Fatal(err)
	}
	repos, err := remote.Catalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, repo := range repos {
		ts, err := remote.List(r.Repo(repo))
		if err != nil {
			// distribution answers NAME_UNKNOWN for a repository that
			// holds only untagged manifests.
			tags = append(tags, repo)
			continue
		}
		for _, tg := range ts {
			tags = append(tags, repo+":"+tg)
		}
	}
	sort.Strings(tags)
	return tags
}

// TestMultiArchCatalog reads the platform variant a Catalog names from a
// multi-arch catalog image and builds one catalog image per platform of
// the base, joined in an index that the CatalogSource pins.
func TestMultiArchCatalog(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	root := testenv.RepoRoot(t)
	opts := world.DefaultOptions(reg.Host)
	opts.CatalogRepository = "redhat/multi-index"
	opts.CatalogTag = "v1"
	opts.CatalogPlatforms = nil // the default is linux/amd64 alone
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		opts.CatalogPlatforms = append(opts.CatalogPlatforms, *pl)
	}
	w, err := world.Build(t.Context(), os.DirFS(filepath.Join(root, "testdata/fbc/small/community-operators-prod/v4.20")), opts)
	if err != nil {
		t.Fatal(err)
	}
	specDir := t.TempDir()
	writeSpec(t, specDir, fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: multi
spec:
  source: %s
  platform: linux/arm64
  target: %s/olm/multi:v1
  packages:
    - name: kubevirt-wol
`, w.CatalogTag, reg.Host))
	cfg, err := spec.Load(os.DirFS(specDir), spec.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := registry.New(registry.Options{})
	obs := &reconcile.Observer{Registry: rc, SpecDir: specDir, Limits: catalogimage.DefaultLimits()}
	_, res, err := obs.Compute(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx, ok := res.Images[0].Image.(v1.ImageIndex)
	if !ok {
		t.Fatalf("built %T, want an index for a multi-arch base", res.Images[0].Image)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range im.Manifests {
		platforms = append(platforms, d.Platform.String())
		img, _ := idx.Image(d.Digest)
		c, err := catalogimage.Read(t.Context(), img, catalogimage.ReadOptions{TempDir: t.TempDir()})
		if err != nil {
			t.Errorf("%s: %v", d.Platform, err)
			continue
		}
		c.Close()
	}
	sort.Strings(platforms)
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, platforms); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
	d, _ := idx.Digest()
	if !strings.HasSuffix(res.Images[0].Pinned, "@"+d.String()) {
		t.Errorf("pinned %s, want the index digest %s", res.Images[0].Pinned, d)
	}
}

// TestMirrorManifestsOnly renders the mirror outputs of a catalog against a
// real registry: every image the kept bundles need is in mapping.txt under
// the Mirror, the catalog defaults its target into the Mirror, and the lock
// records the digests.
func TestMirrorManifestsOnly(t *testing.T) {
	reg, w := communityWorld(t, "kubevirt-wol", "nfs-provisioner-operator")
	specDir, out := t.TempDir(), t.TempDir()
	writeSpec(t, specDir, fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Mirror
metadata:
  name: lab
spec:
  registry: %s/mirror
---
apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community
spec:
  source: %s
  packages:
    - name: nfs-provisioner-operator
`, reg.Host, w.CatalogTag))
	stdout, stderr, code := ferry(t, "render", specDir, "-o", out)
	if code != 0 {
		t.Fatalf("render: exit %d\n%s\n%s", code, stdout, stderr)
	}
	mapping, err := os.ReadFile(filepath.Join(out, "mirror/mapping.txt"))
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := fbc.LoadFS(t.Context(), os.DirFS(filepath.Join(out, "catalogs/community/configs")))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, b := range rendered.Bundles {
		want[b.Image] = true
		for _, ri := range b.RelatedImages {
			want[ri.Image] = true
		}
	}
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(mapping)), "\n") {
		src, dst, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(dst, reg.Host+"/mirror/") {
			t.Errorf("mapping line %q does not map into the mirror", line)
		}
		got[src] = true
	}
	// Tag references are mapped by the digest they resolved to: compare
	// repositories.
	repos := map[string]bool{}
	for src := range got {
		repos[repoOf(t, src)] = true
	}
	for img := range want {
		if !repos[repoOf(t, img)] {
			t.Errorf("image %s of a kept bundle is missing from mapping.txt", img)
		}
	}
	cs, _ := os.ReadFile(filepath.Join(out, "catalogs/community/catalogsource.yaml"))
	if !strings.Contains(string(cs), "image: "+reg.Host+"/mirror/") {
		t.Errorf("the catalog's default target is not in the Mirror:\n%s", cs)
	}
	for _, f := range []string{"mirror/imagedigestmirrorset.yaml", "ferry.lock.yaml"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func repoOf(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return r.Context().Name()
}
