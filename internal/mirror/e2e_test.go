package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
)

// The tests in this file run against two real registries (Debian's
// docker-registry, distribution 2.8: a source, and a mirror with htpasswd
// auth) and a world built from real community-operators v4.20 packages,
// and judge the mirror with skopeo. Set FERRY_SKIP_E2E to skip them.

func skipE2E(t testing.TB) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

// e2ePackages are real community-operators v4.20 packages: related images
// by digest and by tag, several bundles each, about a hundred images.
var e2ePackages = []string{"kepler-operator", "coherence-operator", "cat-facts-operator"}

// env is a source registry holding a world, and a mirror registry.
type env struct {
	src, dst *testenv.Registry
	world    *world.World
	client   *registry.Client
}

func newEnv(t *testing.T, packages ...string) *env {
	t.Helper()
	skipE2E(t)
	e := &env{
		src: testenv.StartRegistry(t, testenv.RegistryOptions{}),
		dst: testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true}),
	}
	fsys := catalogSubset(t, "community-operators-prod-catalogs-v4.20.tar.gz", packages)
	opts := world.DefaultOptions(e.src.Host)
	w, err := world.Build(t.Context(), fsys, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.world = w
	e.client = authClient(t, e.dst.Host, e.dst.Username, e.dst.Password)
	t.Logf("world: %+v", w.Stats)
	return e
}

// catalogSubset extracts a catalog archive of testdata/fbc/large and keeps
// only the named packages.
func catalogSubset(t testing.TB, archive string, packages []string) fs.FS {
	t.Helper()
	root := testenv.RepoRoot(t)
	all, err := world.OpenCatalogArchive(filepath.Join(root, "testdata/fbc/large", archive), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, p := range packages {
		if err := os.CopyFS(filepath.Join(dir, p), mustSub(t, all, p)); err != nil {
			t.Fatal(err)
		}
	}
	return os.DirFS(dir)
}

func mustSub(t testing.TB, fsys fs.FS, dir string) fs.FS {
	t.Helper()
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// authClient is a registry.Client reading a docker config.json that holds
// the mirror's credentials (with user and pass), as users configure Ferry.
func authClient(t testing.TB, host, user, pass string) *registry.Client {
	t.Helper()
	c, err := registry.New(registry.Options{AuthFile: testenv.AuthFile(t, &testenv.Registry{Host: host, Username: user, Password: pass})})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pairs maps every image of the world, and its catalog, to the mirror,
// reading them through via (the source registry or a proxy in front of
// it): <dst>/mirror/<path>, with the tag of references by tag only.
func (e *env) pairs(via string) []Pair {
	refs := append([]string{e.world.Catalog, e.world.CatalogTag}, e.world.Images...)
	out := make([]Pair, 0, len(refs))
	for _, ref := range refs {
		rest := strings.TrimPrefix(ref, e.src.Host+"/")
		repo, tag, pinned := rest, "", false
		if i := strings.Index(repo, "@"); i >= 0 {
			repo, pinned = repo[:i], true
		}
		if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			repo, tag = repo[:i], repo[i+1:]
		}
		if pinned {
			// A reference pinned by digest is mirrored by digest: real
			// catalogs name one tag with different digests in different
			// bundles (the tag moved upstream), and a cluster pulls by
			// digest anyway.
			tag = ""
		}
		dst := e.dst.Host + "/mirror/" + repo
		if tag != "" {
			dst += ":" + tag
		}
		out = append(out, Pair{Source: via + "/" + rest, Destination: dst})
	}
	return out
}

func (e *env) options() Options {
	o := DefaultOptions(e.client)
	o.Concurrency = 6
	return o
}

// verify checks every image of rep in the mirror with skopeo: the raw
// manifest at repo@digest hashes to the digest, every child of an index
// too, and a destination tag resolves to the same bytes.
func (e *env) verify(t *testing.T, rep *Report) {
	t.Helper()
	type check struct{ ref, digest string }
	var checks []check
	seen := map[string]bool{}
	for _, im := range rep.Images {
		if !im.Action.Complete() {
			t.Errorf("%s: %s: %v", im.Pair, im.Action, im.Err)
			continue
		}
		checks = append(checks, check{im.Mirrored, im.Digest})
		if !strings.Contains(im.Destination[len(e.dst.Host):], "@") && strings.Contains(im.Destination[len(e.dst.Host):], ":") {
			checks = append(checks, check{im.Destination, im.Digest})
		}
	}
	var mu sync.Mutex
	var children []check
	verifyAll := func(cs []check) {
		sem := make(chan struct{}, 4)
		var wg sync.WaitGroup
		for _, c := range cs {
			if seen[c.ref] {
				continue
			}
			seen[c.ref] = true
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				raw := e.skopeoRaw(t, c.ref)
				sum := sha256.Sum256(raw)
				if got := "sha256:" + hex.EncodeToString(sum[:]); got != c.digest {
					t.Errorf("skopeo inspect --raw %s: digest %s, want %s", c.ref, got, c.digest)
					return
				}
				var idx v1.IndexManifest
				if json.Unmarshal(raw, &idx) == nil && len(idx.Manifests) > 0 {
					repo := c.ref[:strings.LastIndexAny(c.ref, "@:")]
					if strings.Contains(c.ref, "@") {
						repo = c.ref[:strings.Index(c.ref, "@")]
					}
					mu.Lock()
					for _, d := range idx.Manifests {
						children = append(children, check{repo + "@" + d.Digest.String(), d.Digest.String()})
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	verifyAll(checks)
	verifyAll(children)
	if len(children) == 0 {
		t.Error("no index among the mirrored images; the world should have multi-arch images")
	}
	t.Logf("skopeo verified %d references (%d index children)", len(seen), len(children))
}

func (e *env) skopeoRaw(t *testing.T, ref string) []byte {
	args := []string{"inspect", "--raw", "--tls-verify=false"}
	if e.dst.Creds() != "" {
		args = append(args, "--creds", e.dst.Creds())
	}
	out, stderr, err := testenv.RunSkopeo(t, append(args, "docker://"+ref)...)
	if err != nil {
		t.Errorf("skopeo inspect --raw %s: %v\n%s", ref, err, stderr)
	}
	return []byte(out)
}

// TestMirrorWorld mirrors a world of real catalog packages into an
// authenticated registry, checks every image with skopeo and the byte
// accounting against the world's own, then shows a rerun is one HEAD per
// image (the mirror's access log is the judge) and a new image costs only
// its own new blobs.
func TestMirrorWorld(t *testing.T) {
	t.Parallel()
	e := newEnv(t, e2ePackages...)
	pairs := e.pairs(e.src.Host)
	rep, err := Copy(t.Context(), pairs, e.options())
	if err != nil {
		t.Fatal(err)
	}
	e.verify(t, rep)
	s := rep.Stats
	t.Logf("cold: %+v in %s", s, rep.Duration)
	// Each distinct blob uploaded exactly once; every other repository
	// that needs it mounts it.
	if s.BlobsUploaded != e.world.Stats.Blobs || s.BytesUploaded != e.world.Stats.Bytes {
		t.Errorf("uploaded %d blobs / %d bytes, want the world's distinct %d / %d", s.BlobsUploaded, s.BytesUploaded, e.world.Stats.Blobs, e.world.Stats.Bytes)
	}
	if s.BlobsMounted == 0 {
		t.Error("no blob was mounted; shared base layers should be")
	}
	// The catalog is mirrored by digest and by tag: one more PUT when the
	// by-digest pair gets there first and the tag is put afterwards.
	if s.Manifests != e.world.Stats.Manifests && s.Manifests != e.world.Stats.Manifests+1 {
		t.Errorf("put %d manifests, want the world's %d (+1 for the catalog tag)", s.Manifests, e.world.Stats.Manifests)
	}
	if sent := rep.Registry(e.dst.Host).BytesSent; sent < s.BytesUploaded {
		t.Errorf("sent %d bytes, less than the %d uploaded", sent, s.BytesUploaded)
	}

	// No-op rerun: one HEAD per distinct destination image, no writes.
	off := e.dst.LogSize(t)
	opts := e.options()
	opts.BlobHints = rep.Blobs
	rep2, err := Copy(t.Context(), pairs, opts)
	if err != nil {
		t.Fatal(err)
	}
	counts, lines := e.dst.Requests(t, off)
	distinct := map[Pair]bool{}
	for _, p := range pairs {
		distinct[p] = true
	}
	// GET: the /v2/ capability probe, once per run (a 401 challenge).
	want := map[string]int{"HEAD": len(distinct), "GET": 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("rerun requests at the mirror %v, want %v:\n%s", counts, want, strings.Join(lines, "\n"))
	}
	if rep2.Stats.ImagesPresent != len(pairs) || rep2.Registry(e.dst.Host).Writes != 0 {
		t.Errorf("rerun: %+v, %d writes", rep2.Stats, rep2.Registry(e.dst.Host).Writes)
	}
	t.Logf("no-op rerun: %d images in %s, %v", len(pairs), rep2.Duration, counts)

	// One new bundle: an existing image plus one layer, in a new
	// repository. Its old layers are in the mirror (elsewhere) and must be
	// mounted; only the new layer and config may be uploaded.
	base, fresh := e.newBundle(t, "newcomer/operator-bundle:v9.9.9")
	pairs = append(pairs, Pair{Source: e.src.Ref("newcomer/operator-bundle:v9.9.9"), Destination: e.dst.Ref("mirror/newcomer/operator-bundle:v9.9.9")})
	opts = e.options()
	opts.BlobHints = rep2.Blobs // the no-op run passes the cold run's on
	if len(rep2.Blobs) != len(rep.Blobs) || len(rep.Blobs) != e.world.Stats.Blobs {
		t.Errorf("blob locations: cold run %d, no-op run %d, want the world's %d", len(rep.Blobs), len(rep2.Blobs), e.world.Stats.Blobs)
	}
	rep3, err := Copy(t.Context(), pairs, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.verify(t, rep3)
	if s := rep3.Stats; s.ImagesCopied != 1 || s.BytesUploaded != fresh || s.BlobsMounted != base {
		t.Errorf("new bundle: %+v; want 1 image copied, %d bytes uploaded, %d blobs mounted", s, fresh, base)
	}
}

// newBundle pushes to the source an image made of a world image plus one
// new layer, and returns how many blobs it shares with the world and the
// bytes of those it does not.
func (e *env) newBundle(t testing.TB, repoTag string) (shared int, fresh int64) {
	t.Helper()
	for _, ref := range e.world.Images {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(r)
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
		img, err = mutate.AppendLayers(img, extra)
		if err != nil {
			t.Fatal(err)
		}
		push(t, e.src.Ref(repoTag), img)
		cfg, _ := img.RawConfigFile()
		sz, _ := extra.Size()
		return len(layers), sz + int64(len(cfg))
	}
	t.Fatal("the world has no single-arch image")
	return 0, 0
}

func sharedBaseSize(t testing.TB) int64 {
	sz, err := sharedBase.Size()
	if err != nil {
		t.Fatal(err)
	}
	return sz
}

// TestMirrorThroughFaults puts a fault-injecting proxy in front of the
// source registry (500, 503, 429 with Retry-After, resets before the
// response and in the middle of a blob, stalls before the response and
// mid-blob) and requires the run to complete with every image correct.
func TestMirrorThroughFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, e2ePackages[:2]...)
	proxy := startFaultProxy(t, e.src.Host)
	opts := e.options()
	opts.Retry.Initial = 20 * time.Millisecond
	opts.Retry.StallTimeout = time.Second
	var logs bytes.Buffer
	var logMu sync.Mutex
	opts.Log = slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	off := e.dst.LogSize(t)
	rep, err := Copy(t.Context(), e.pairs(proxy.Host), opts)
	if err != nil {
		t.Fatal(err)
	}
	e.verify(t, rep)
	// What happened to every blob, from the mirror's own log: each was
	// committed exactly once (the faults make streams break and answers
	// arrive late, so some uploads are sent again, but never after a
	// commit) and the engine's count agrees.
	_, lines := e.dst.Requests(t, off)
	commits := map[string]int{}
	for _, l := range lines {
		method, rest, _ := strings.Cut(l, " ")
		uri, status, _ := strings.Cut(rest, " ")
		if method == http.MethodPut && status == "201" && strings.Contains(uri, "/blobs/uploads/") {
			if u, err := url.Parse(uri); err == nil {
				commits[u.Query().Get("digest")]++
			}
		}
	}
	for d, n := range commits {
		if n != 1 {
			t.Errorf("blob %s committed %d times at the mirror, want once", d, n)
		}
	}
	if len(commits) != e.world.Stats.Blobs {
		t.Errorf("%d distinct blobs committed at the mirror, want %d", len(commits), e.world.Stats.Blobs)
	}
	injected, retried429, violations := proxy.report()
	t.Logf("faults injected: %v; requests %v", injected, rep.Registry(proxy.Host).Requests)
	for _, f := range []fault{fault500, fault503, fault429, faultReset, faultResetBody, faultStall, faultStallBody} {
		if injected[f] == 0 {
			t.Errorf("no %q fault was injected; the test proves nothing about it", f)
		}
	}
	if retried429 == 0 {
		t.Error("no request came back after a 429")
	}
	for _, v := range violations {
		t.Error(v)
	}
	if rep.Registry(proxy.Host).Retries == 0 {
		t.Error("no retries counted")
	}
	if rep.Stats.BlobsUploaded != e.world.Stats.Blobs || rep.Stats.BytesUploaded != e.world.Stats.Bytes {
		// Blobs whose stream broke are uploaded again from scratch, but
		// only the committed upload counts; an upload committed although
		// its answer was lost counts once (Stats.UploadsRecovered).
		t.Errorf("uploaded %d blobs / %d bytes, want %d / %d", rep.Stats.BlobsUploaded, rep.Stats.BytesUploaded, e.world.Stats.Blobs, e.world.Stats.Bytes)
	}
	t.Logf("uploads whose answer was lost and found committed: %d", rep.Stats.UploadsRecovered)
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestMirrorKilledRunConverges cancels a run halfway through its blobs and
// shows the next run completes it, copying less than a cold run would.
func TestMirrorKilledRunConverges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, e2ePackages[:2]...)
	pairs := e.pairs(e.src.Host)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Killed once half the blobs are in and at least one image is
	// complete: without a HEAD per blob, blobs of many images finish
	// before any manifest is put, and a kill at half the blobs alone can
	// land before the first image is done.
	var blobs, images atomic.Int64
	var once sync.Once
	opts := e.options()
	opts.Reporter = ReporterFunc(func(ev Event) {
		switch ev.Kind {
		case EventBlob:
			blobs.Add(1)
		case EventImage:
			images.Add(1)
		}
		if blobs.Load() >= int64(e.world.Stats.Blobs/2) && images.Load() > 0 {
			once.Do(cancel)
		}
	})
	rep1, err := Copy(ctx, pairs, opts)
	var ie *IncompleteError
	if !errors.As(err, &ie) || !errors.Is(err, context.Canceled) {
		t.Fatalf("killed run: %v, want an *IncompleteError that Is context.Canceled", err)
	}
	t.Logf("killed run: %+v", rep1.Stats)
	if rep1.Stats.ImagesFailed == 0 {
		t.Fatal("the run finished before it was killed; nothing to converge")
	}
	rep2, err := Copy(t.Context(), pairs, e.options())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resumed run: %+v", rep2.Stats)
	e.verify(t, rep2)
	if rep2.Stats.ImagesPresent == 0 {
		t.Error("resumed run found no image complete from the killed one")
	}
	if rep2.Stats.BlobsUploaded >= e.world.Stats.Blobs {
		t.Errorf("resumed run uploaded %d blobs, as many as a cold run (%d)", rep2.Stats.BlobsUploaded, e.world.Stats.Blobs)
	}
	rep3, err := Copy(t.Context(), pairs, e.options())
	if err != nil || rep3.Stats.ImagesPresent != len(pairs) {
		t.Errorf("third run: %+v, %v; want everything present", rep3.Stats, err)
	}
}

// TestMirrorWithinOneRegistry copies a world into other repositories of
// the registry that holds it: every blob is mounted, none uploaded.
func TestMirrorWithinOneRegistry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, e2ePackages[2])
	e.dst = e.src
	var pairs []Pair
	for _, p := range e.pairs(e.src.Host) {
		p.Destination = e.src.Host + "/copies/" + strings.TrimPrefix(p.Destination, e.src.Host+"/mirror/")
		pairs = append(pairs, p)
	}
	rep, err := Copy(t.Context(), pairs, DefaultOptions(anonymousClient(t)))
	if err != nil {
		t.Fatal(err)
	}
	e.verify(t, rep)
	if s := rep.Stats; s.BlobsUploaded != 0 || s.BlobsMounted == 0 {
		t.Errorf("stats %+v: want every blob mounted, none uploaded", s)
	}
}

// TestMirrorPlatformFilter asks for linux/amd64 only. Distribution 2.8
// refuses an index whose children are missing, so each index must end up
// complete (its digest unchanged) and be counted as such.
func TestMirrorPlatformFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, e2ePackages[2])
	opts := e.options()
	opts.Platforms = []string{"linux/amd64"}
	rep, err := Copy(t.Context(), e.pairs(e.src.Host), opts)
	if err != nil {
		t.Fatal(err)
	}
	e.verify(t, rep)
	if rep.Stats.IndexesCompleted != e.world.Stats.Indexes {
		t.Errorf("%d indexes completed, want all %d (distribution validates index children)", rep.Stats.IndexesCompleted, e.world.Stats.Indexes)
	}
}

// TestMirrorLeaksNoCredentials runs with a wrong mirror password and through
// a proxy that redirects blob reads to a dead URL carrying userinfo and a
// signed query, and requires the secret in neither errors, report nor logs.
func TestMirrorLeaksNoCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, e2ePackages[2])
	const secret = "s3cr3t-Sig-Value"
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logs, &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	check := func(what string, rep *Report, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		b, _ := json.Marshal(rep)
		mu.Lock()
		all := err.Error() + string(b) + logs.String()
		mu.Unlock()
		for _, f := range rep.Failed() {
			all += f.Err.Error()
		}
		if strings.Contains(all, secret) {
			t.Errorf("%s: the secret leaked:\n%s", what, all)
		}
	}

	// Wrong password at the mirror.
	opts := e.options()
	opts.Remotes = authClient(t, e.dst.Host, e.dst.Username, secret)
	opts.Log = logger
	opts.Retry.Attempts = 2
	rep, err := Copy(t.Context(), e.pairs(e.src.Host)[:3], opts)
	check("wrong password", rep, err)
	if f := rep.Failed(); len(f) != 3 || f[0].Err.StatusCode != 401 {
		t.Errorf("want 3 failures with 401, got %+v", f)
	}

	// Blob reads redirected to a dead object store URL with userinfo
	// (net/http masks the password, not the user) and a signed query.
	dead := "http://" + secret + ":" + secret + "@127.0.0.1:1/blob?X-Amz-Signature=" + secret + "&X-Amz-Credential=" + secret
	redirect := startRedirectProxy(t, e.src.Host, func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
	}, dead)
	opts = e.options()
	opts.Log = logger
	opts.Retry.Attempts, opts.Retry.Initial, opts.Retry.TransferAttempts = 2, time.Millisecond, 1
	rep, err = Copy(t.Context(), e.pairs(redirect)[:3], opts)
	check("blob redirect", rep, err)
	if !strings.Contains(err.Error(), "127.0.0.1:1/blob") {
		t.Errorf("the error should still say where it failed: %v", err)
	}

	// An upload session whose location carries a signature (go-containerregistry
	// does not redact the URL of a failed PATCH).
	upload := startUploadLocationProxy(t, e.dst.Host, "http://127.0.0.1:1/upload/session?_state="+secret+"&signature="+secret)
	opts = e.options()
	opts.Remotes = authClient(t, upload, e.dst.Username, e.dst.Password)
	opts.Log = logger
	opts.Retry.Attempts, opts.Retry.Initial, opts.Retry.TransferAttempts = 2, time.Millisecond, 1
	var pairs []Pair
	for _, p := range e.pairs(e.src.Host)[:3] {
		p.Destination = upload + strings.TrimPrefix(p.Destination, e.dst.Host)
		pairs = append(pairs, p)
	}
	rep, err = Copy(t.Context(), pairs, opts)
	check("upload location", rep, err)
	if !strings.Contains(err.Error(), "127.0.0.1:1/upload/session") {
		t.Errorf("the error should still say where it failed: %v", err)
	}
}

// TestMirrorStreamsLargeBlob copies an image with a 128 MiB layer between
// real registries and samples the heap meanwhile: the blob must stream,
// not sit in memory. It is not parallel: the heap is the whole process's.
func TestMirrorStreamsLargeBlob(t *testing.T) {
	skipE2E(t)
	src := testenv.StartRegistry(t, testenv.RegistryOptions{})
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{})
	const size = 128 << 20
	layer := newBigLayer(t, 42, size)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	d := push(t, src.Ref("big/image:v1"), img)

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var m runtime.MemStats
		var max uint64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- max
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				if m.HeapInuse > max {
					max = m.HeapInuse
				}
			}
		}
	}()
	rep, err := Copy(t.Context(), []Pair{{Source: src.Ref("big/image@" + d), Destination: dst.Ref("big/image")}}, DefaultOptions(anonymousClient(t)))
	close(stop)
	p := <-peak
	if err != nil {
		t.Fatal(err)
	}
	if got, err := headDigest(t, dst.Ref("big/image@"+d)); err != nil || got != d {
		t.Fatalf("mirrored: %q %v", got, err)
	}
	if rep.Stats.BytesUploaded < size {
		t.Fatalf("uploaded %d bytes, want at least %d", rep.Stats.BytesUploaded, size)
	}
	grew := int64(p) - int64(base.HeapInuse)
	t.Logf("heap in use: %d MiB before, peak %d MiB while copying %d MiB", base.HeapInuse>>20, p>>20, size>>20)
	if grew > 32<<20 {
		t.Errorf("heap grew by %d MiB while copying a %d MiB blob: it is buffered, not streamed", grew>>20, size>>20)
	}
}

// bigLayer is a layer of pseudo-random bytes generated on every read, so
// neither pushing nor checking it needs it in memory.
type bigLayer struct {
	seed   uint64
	size   int64
	digest v1.Hash
}

func newBigLayer(t testing.TB, seed uint64, size int64) *bigLayer {
	l := &bigLayer{seed: seed, size: size}
	rc, _ := l.Compressed()
	h, n, err := v1.SHA256(rc)
	if err != nil || n != size {
		t.Fatal(err)
	}
	l.digest = h
	return l
}

func (l *bigLayer) Compressed() (io.ReadCloser, error) {
	var seed [32]byte
	seed[0] = byte(l.seed)
	return io.NopCloser(io.LimitReader(rand.NewChaCha8(seed), l.size)), nil
}
func (l *bigLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
func (l *bigLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *bigLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *bigLayer) Size() (int64, error)                 { return l.size, nil }
func (l *bigLayer) MediaType() (types.MediaType, error)  { return types.DockerUncompressedLayer, nil }
