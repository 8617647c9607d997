package airgap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
)

// The tests in this file run against real registries (Debian's
// docker-registry, distribution 2.8, behind htpasswd auth) holding a world
// built from real community-operators v4.20 packages, and judge the mirror
// with skopeo. Set FERRY_SKIP_E2E to skip them.

func skipE2E(t testing.TB) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

// e2ePackages are the packages internal/mirror's e2e tests use: ~40
// images, multi-arch indexes, shared base layers.
var e2ePackages = []string{"kepler-operator", "coherence-operator", "cat-facts-operator"}

// catalogSubset extracts a catalog archive of testdata/fbc/large and keeps
// only the named packages.
func catalogSubset(t testing.TB, archive string, packages []string) fs.FS {
	t.Helper()
	all, err := world.OpenCatalogArchive(filepath.Join(testenv.RepoRoot(t), "testdata/fbc/large", archive), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, p := range packages {
		sub, err := fs.Sub(all, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(filepath.Join(dir, p), sub); err != nil {
			t.Fatal(err)
		}
	}
	return os.DirFS(dir)
}

// authClient is a registry.Client reading a docker config.json with the
// credentials of exactly one registry, as the two sides of an air gap
// each know only their own.
func authClient(t testing.TB, r *testenv.Registry) *registry.Client {
	t.Helper()
	c, err := registry.New(registry.Options{AuthFile: testenv.AuthFile(t, r)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// worldPairs maps the world's images and catalog into dst: <dst>/mirror/<path>,
// with the tag of references by tag only (pinned ones go by digest).
func worldPairs(w *world.World, src, dst string) []mirror.Pair {
	refs := append([]string{w.Catalog, w.CatalogTag}, w.Images...)
	out := make([]mirror.Pair, 0, len(refs))
	for _, ref := range refs {
		rest := strings.TrimPrefix(ref, src+"/")
		repo, tag, pinned := rest, "", false
		if i := strings.Index(repo, "@"); i >= 0 {
			repo, pinned = repo[:i], true
		}
		if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			repo, tag = repo[:i], repo[i+1:]
		}
		d := dst + "/mirror/" + repo
		if tag != "" && !pinned {
			d += ":" + tag
		}
		out = append(out, mirror.Pair{Source: ref, Destination: d})
	}
	return out
}

var accessLine = regexp.MustCompile(`"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) `)

// requestsSince returns the requests a registry logged after offset (a
// byte position in its log) and the new offset.
func requestsSince(t *testing.T, r *testenv.Registry, offset int64) ([]string, int64) {
	t.Helper()
	// Access log lines are written after the response; give the last a moment.
	time.Sleep(200 * time.Millisecond)
	b, err := os.ReadFile(r.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b[offset:]), "\n") {
		if m := accessLine.FindStringSubmatch(l); m != nil {
			out = append(out, m[1]+" "+m[2]+" "+m[3])
		}
	}
	return out, int64(len(b))
}

// verifyWithSkopeo fetches every image of rep from the mirror with skopeo
// inspect --raw and hashes the bytes against the digest; index children
// and destination tags too.
func verifyWithSkopeo(t *testing.T, dst *testenv.Registry, rep *mirror.Report) {
	t.Helper()
	type check struct{ ref, digest string }
	var checks []check
	for _, im := range rep.Images {
		if !im.Action.Complete() {
			t.Errorf("%s: %s: %v", im.Pair, im.Action, im.Err)
			continue
		}
		checks = append(checks, check{im.Mirrored, im.Digest})
		if _, tag, _ := splitDestination(im.Destination); tag != "" {
			checks = append(checks, check{im.Destination, im.Digest})
		}
	}
	seen := map[string]bool{}
	var mu sync.Mutex
	children := 0
	for len(checks) > 0 {
		var next []check
		sem := make(chan struct{}, 4)
		var wg sync.WaitGroup
		for _, c := range checks {
			if seen[c.ref] {
				continue
			}
			seen[c.ref] = true
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				out, stderr, err := testenv.RunSkopeo(t, "inspect", "--raw", "--tls-verify=false", "--creds", dst.Creds(), "docker://"+c.ref)
				if err != nil {
					t.Errorf("skopeo inspect --raw %s: %v\n%s", c.ref, err, stderr)
					return
				}
				sum := sha256.Sum256([]byte(out))
				if got := "sha256:" + hex.EncodeToString(sum[:]); got != c.digest {
					t.Errorf("skopeo inspect --raw %s: digest %s, want %s", c.ref, got, c.digest)
					return
				}
				var idx v1.IndexManifest
				if json.Unmarshal([]byte(out), &idx) == nil && len(idx.Manifests) > 0 {
					repo := c.ref[:strings.LastIndexAny(c.ref, "@:")]
					if i := strings.Index(c.ref, "@"); i >= 0 {
						repo = c.ref[:i]
					}
					mu.Lock()
					for _, d := range idx.Manifests {
						next = append(next, check{repo + "@" + d.Digest.String(), d.Digest.String()})
						children++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		checks = next
	}
	if children == 0 {
		t.Error("no index among the images; the world should have multi-arch images")
	}
	t.Logf("skopeo verified %d references (%d index children)", len(seen), children)
}

// TestAirgapWorld carries a world of real catalog packages across an air
// gap: export to a tar and to a directory from an authenticated source,
// import the tar into a second authenticated registry with credentials for
// it alone (the source's access log proves Import never contacts it), and
// check every image with skopeo. Then one new bundle is exported with
// Since = the first archive: the second archive holds exactly its new
// manifest, config and layer, and importing it uploads only those two
// blobs and mounts the old layers from where the record says.
func TestAirgapWorld(t *testing.T) {
	skipE2E(t)
	t.Parallel()
	src := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	wopts := world.DefaultOptions(src.Host)
	wopts.Remote = []remote.Option{remote.WithAuth(src.Auth())}
	w, err := world.Build(t.Context(), catalogSubset(t, "community-operators-prod-catalogs-v4.20.tar.gz", e2ePackages), wopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("world: %+v", w.Stats)
	pairs := worldPairs(w, src.Host, dst.Host)
	files := map[string][]byte{"ferry.lock": []byte("lock: 1\n")}
	srcClient, dstClient := authClient(t, src), authClient(t, dst)

	dir := t.TempDir()
	tar1, dir1 := filepath.Join(dir, "ferry-1.tar"), filepath.Join(dir, "ferry-1")
	start := time.Now()
	rep1, err := Export(t.Context(), pairs, ExportOptions{Path: tar1, Remotes: srcClient, Files: files, Concurrency: 6})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("export to tar: %+v in %s", rep1.Stats, time.Since(start))
	// The archive holds the world, each blob once.
	if s := rep1.Stats; s.Blobs != w.Stats.Blobs || s.BlobBytes != w.Stats.Bytes || s.Manifests != w.Stats.Manifests {
		t.Errorf("archive holds %d manifests, %d blobs of %d bytes; the world has %d, %d, %d", s.Manifests, s.Blobs, s.BlobBytes, w.Stats.Manifests, w.Stats.Blobs, w.Stats.Bytes)
	}
	rep1d, err := Export(t.Context(), pairs, ExportOptions{Path: dir1, Remotes: srcClient, Files: files, Concurrency: 6})
	if err != nil {
		t.Fatal(err)
	}
	if rep1d.Stats != rep1.Stats {
		t.Errorf("directory export %+v differs from the tar's %+v", rep1d.Stats, rep1.Stats)
	}
	raw, err := os.ReadFile(tar1)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(src.Password)) {
		t.Error("the archive contains the source's password")
	}

	// Import on the other side of the gap: never a request to the source.
	_, off := requestsSince(t, src, 0)
	start = time.Now()
	irep, got, err := Import(t.Context(), tar1, ImportOptions{Remotes: dstClient, Concurrency: 6})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("import of the tar: %+v in %s", irep.Stats, time.Since(start))
	if reqs, _ := requestsSince(t, src, off); len(reqs) != 0 {
		t.Errorf("import sent %d requests to the source: %v", len(reqs), reqs)
	}
	if string(got["ferry.lock"]) != string(files["ferry.lock"]) {
		t.Errorf("files: %q", got)
	}
	if s := irep.Stats; s.BlobsUploaded != w.Stats.Blobs || s.BytesUploaded != w.Stats.Bytes || s.BlobsMounted == 0 {
		t.Errorf("import uploaded %d blobs / %d bytes (%d mounted); want the world's %d / %d, shared layers mounted", s.BlobsUploaded, s.BytesUploaded, s.BlobsMounted, w.Stats.Blobs, w.Stats.Bytes)
	}
	verifyWithSkopeo(t, dst, irep)

	// The directory archive imports too: everything is there already, one
	// HEAD per image.
	_, dstOff := requestsSince(t, dst, 0)
	irepd, _, err := Import(t.Context(), dir1, ImportOptions{Remotes: dstClient, Concurrency: 6})
	if err != nil {
		t.Fatal(err)
	}
	reqs, _ := requestsSince(t, dst, dstOff)
	if irepd.Stats.ImagesPresent != len(pairs) || irepd.Registry(dst.Host).Writes != 0 {
		t.Errorf("directory import into the same mirror: %+v, requests %v", irepd.Stats, reqs)
	}

	// One new bundle: a world image plus one layer, in a new repository.
	img, shared, fresh := newBundle(t, w, src)
	newRef := src.Ref("newcomer/operator-bundle:v9.9.9")
	pushImage(t, newRef, img, src)
	pairs2 := append(append([]mirror.Pair(nil), pairs...), mirror.Pair{Source: newRef, Destination: dst.Ref("mirror/newcomer/operator-bundle:v9.9.9")})
	tar2 := filepath.Join(dir, "ferry-2.tar")
	rep2, err := Export(t.Context(), pairs2, ExportOptions{Path: tar2, Remotes: srcClient, Since: []string{tar1}, Files: files, Concurrency: 6})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("incremental export: %+v", rep2.Stats)
	manifest, _ := img.RawManifest()
	a, err := openArchive(tar2)
	if err != nil {
		t.Fatal(err)
	}
	var members int
	var memberBytes int64
	for n, s := range a.mem {
		if strings.HasPrefix(n, "blobs/") {
			members++
			memberBytes += s.size
		}
	}
	a.Close()
	if members != 3 || memberBytes != fresh+int64(len(manifest)) {
		t.Errorf("second archive: %d blobs/ members of %d bytes; want 3 (manifest, config, layer) of %d", members, memberBytes, fresh+int64(len(manifest)))
	}
	if s := rep2.Stats; s.Blobs != 2 || s.BlobBytes != fresh || s.Manifests != 1 || s.LeftOut != shared || s.Earlier != len(pairs) {
		t.Errorf("second archive: %+v; want 1 manifest, 2 blobs of %d bytes, %d left out, %d earlier images", s, fresh, shared, len(pairs))
	}

	_, off = requestsSince(t, src, 0)
	irep2, _, err := Import(t.Context(), tar2, ImportOptions{Remotes: dstClient, Concurrency: 6})
	if err != nil {
		t.Fatal(err)
	}
	if reqs, _ := requestsSince(t, src, off); len(reqs) != 0 {
		t.Errorf("import sent %d requests to the source: %v", len(reqs), reqs)
	}
	if s := irep2.Stats; s.ImagesCopied != 1 || s.BlobsUploaded != 2 || s.BytesUploaded != fresh || s.BlobsMounted != shared {
		t.Errorf("second import: %+v; want 1 image copied, 2 blobs (%d bytes) uploaded, %d mounted", s, fresh, shared)
	}
	verifyWithSkopeo(t, dst, irep2)
}

// newBundle is a world image plus one new layer; it returns how many blobs
// it shares with the world and the bytes of the ones it does not.
func newBundle(t *testing.T, w *world.World, src *testenv.Registry) (v1.Image, int, int64) {
	t.Helper()
	for _, ref := range w.Images {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(r, remote.WithAuth(src.Auth()))
		if err != nil {
			t.Fatal(err)
		}
		if !desc.MediaType.IsImage() {
			continue
		}
		img, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		extra, err := random.Layer(3000, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, extra); err != nil {
			t.Fatal(err)
		}
		cfg, _ := img.RawConfigFile()
		sz, _ := extra.Size()
		return img, len(layers), sz + int64(len(cfg))
	}
	t.Fatal("the world has no single-arch image")
	return nil, 0, 0
}

func pushImage(t testing.TB, ref string, img v1.Image, r *testenv.Registry) {
	t.Helper()
	nr, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(nr, img, remote.WithAuth(r.Auth())); err != nil {
		t.Fatal(err)
	}
}

// TestAirgapStreamsLargeBlob exports a 96 MiB layer to a tar and imports
// it: the heap must not grow with the blob, on either side.
func TestAirgapStreamsLargeBlob(t *testing.T) {
	skipE2E(t)
	src := testenv.StartRegistry(t, testenv.RegistryOptions{})
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{})
	const size = 96 << 20
	img, err := mutate.AppendLayers(empty.Image, newBigLayer(t, 7, size))
	if err != nil {
		t.Fatal(err)
	}
	pushImage(t, src.Ref("big/image:v1"), img, src)
	d := digestOf(t, img)
	path := filepath.Join(t.TempDir(), "big.tar")
	pairs := []mirror.Pair{{Source: src.Ref("big/image@" + d), Destination: dst.Ref("big/image:v1")}}
	client := anonymousClient(t)

	grew := heapGrowth(t, func() {
		if _, err := Export(t.Context(), pairs, ExportOptions{Path: path, Remotes: client}); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("export: heap grew by %d MiB for a %d MiB blob", grew>>20, size>>20)
	if grew > 32<<20 {
		t.Errorf("export: heap grew by %d MiB for a %d MiB blob: it is buffered, not streamed", grew>>20, size>>20)
	}
	var rep *mirror.Report
	grew = heapGrowth(t, func() {
		if rep, _, err = Import(t.Context(), path, ImportOptions{Remotes: client}); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("import: heap grew by %d MiB for a %d MiB blob", grew>>20, size>>20)
	if grew > 32<<20 {
		t.Errorf("import: heap grew by %d MiB for a %d MiB blob: it is buffered, not streamed", grew>>20, size>>20)
	}
	if rep.Stats.BytesUploaded < size {
		t.Errorf("uploaded %d bytes, want at least %d", rep.Stats.BytesUploaded, size)
	}
	if got, err := rawDigest(t, dst.Ref("big/image:v1")); err != nil || got != d {
		t.Errorf("imported: %s %v, want %s", got, err, d)
	}
}

// heapGrowth runs fn and returns the peak heap in use above where it was.
func heapGrowth(t *testing.T, fn func()) int64 {
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop, peak := make(chan struct{}), make(chan uint64)
	go func() {
		var m runtime.MemStats
		var hi uint64
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- hi
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				hi = max(hi, m.HeapInuse)
			}
		}
	}()
	fn()
	close(stop)
	return int64(<-peak) - int64(base.HeapInuse)
}

// bigLayer is a layer of pseudo-random bytes generated on each read, so
// nothing in the test holds it in memory.
type bigLayer struct {
	seed   byte
	size   int64
	digest v1.Hash
}

func newBigLayer(t testing.TB, seed byte, size int64) *bigLayer {
	l := &bigLayer{seed: seed, size: size}
	rc, _ := l.Compressed()
	h, n, err := v1.SHA256(rc)
	if err != nil || n != size {
		t.Fatalf("hash big layer: %v (%d bytes)", err, n)
	}
	l.digest = h
	return l
}

func (l *bigLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(io.LimitReader(rand.NewChaCha8([32]byte{l.seed}), l.size)), nil
}
func (l *bigLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
func (l *bigLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *bigLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *bigLayer) Size() (int64, error)                 { return l.size, nil }
func (l *bigLayer) MediaType() (types.MediaType, error)  { return types.DockerUncompressedLayer, nil }
