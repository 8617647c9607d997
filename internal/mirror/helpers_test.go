package mirror

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/internal/testenv"
)

// memRegistry is testenv's in-memory registry (mounts, request log).
type memRegistry = testenv.MemRegistry

func startMemRegistry(t testing.TB) *memRegistry { return testenv.StartMemRegistry(t) }

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
