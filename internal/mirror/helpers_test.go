package mirror

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/registry"
)

// memRegistry serves go-containerregistry's in-memory registry on
// 127.0.0.1 behind a request log, for unit tests.
type memRegistry struct {
	Host string
	log  *requestLog
}

func startMemRegistry(t testing.TB) *memRegistry {
	t.Helper()
	rl := &requestLog{}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rl.add(r.Method, r.URL.Path)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &memRegistry{Host: strings.TrimPrefix(srv.URL, "http://"), log: rl}
}

// requestLog counts requests by method, independently of Copy's own
// accounting.
type requestLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *requestLog) add(method, path string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, method+" "+path)
}

func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = nil
}

func (l *requestLog) count() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, s := range l.lines {
		m, _, _ := strings.Cut(s, " ")
		out[m]++
	}
	return out
}

func (l *requestLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// anonymousClient is a registry.Client that knows no credentials.
func anonymousClient(t testing.TB) *registry.Client {
	t.Helper()
	f := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(f, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := registry.New(registry.Options{AuthFile: f})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sharedBase is a layer many test images stack on, as operator images
// share UBI layers.
var sharedBase = func() v1.Layer {
	l, err := random.Layer(4096, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		panic(err)
	}
	return l
}()

// testImage is a random image on top of sharedBase.
func testImage(t testing.TB) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, sharedBase)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testIndex is a three-platform index of testImages.
func testIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64", "ppc64le"} {
		adds = append(adds, mutate.IndexAddendum{
			Add:        testImage(t),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

func push(t testing.TB, ref string, x remote.Taggable) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	switch v := x.(type) {
	case v1.Image:
		err = remote.Write(r, v)
	case v1.ImageIndex:
		err = remote.WriteIndex(r, v)
	}
	if err != nil {
		t.Fatal(err)
	}
	d, err := x.(interface{ Digest() (v1.Hash, error) }).Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// headDigest is the digest ref resolves to, by an independent client
// (go-containerregistry's remote.Head with defaults).
func headDigest(t testing.TB, ref string, opts ...remote.Option) (string, error) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r, opts...)
	if err != nil {
		return "", err
	}
	return d.Digest.String(), nil
}
