package airgap

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

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
	l, err := random.Layer(4096, types.DockerLayer)
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

// testIndex is a two-platform index of testImages.
func testIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img := testImage(t)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

// withLayer is img plus one new random layer.
func withLayer(t testing.TB, img v1.Image, size int64) (v1.Image, v1.Layer) {
	t.Helper()
	l, err := random.Layer(size, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	out, err := mutate.AppendLayers(img, l)
	if err != nil {
		t.Fatal(err)
	}
	return out, l
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
	return digestOf(t, x)
}

func digestOf(t testing.TB, x remote.Taggable) string {
	t.Helper()
	d, err := x.(digester).Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// rawDigest fetches ref's manifest with go-containerregistry's defaults (a
// client independent of the engine) and hashes the bytes.
func rawDigest(t testing.TB, ref string) (string, error) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(d.Manifest)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// blobsOf lists the distinct manifests and blobs of images (children of
// indexes included): what a full archive of them holds.
func blobsOf(t testing.TB, xs ...remote.Taggable) (manifests, blobs map[string]int64) {
	t.Helper()
	manifests, blobs = map[string]int64{}, map[string]int64{}
	var visit func(x remote.Taggable)
	visit = func(x remote.Taggable) {
		raw, err := x.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		manifests[digestOf(t, x)] = int64(len(raw))
		switch v := x.(type) {
		case v1.ImageIndex:
			im, err := v.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range im.Manifests {
				child, err := v.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				visit(child)
			}
		case v1.Image:
			m, err := v.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
				blobs[d.Digest.String()] = d.Size
			}
		}
	}
	for _, x := range xs {
		visit(x)
	}
	return manifests, blobs
}

// holdsBlob says whether the registry's repository ("host/path") received
// a blob (an upload or a mount).
func holdsBlob(m *memRegistry, repo, digest string) bool {
	return m.HoldsBlob(repoPath(repo), digest)
}
