package catalogimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/zstd"

	"github.com/ferry-gitops/ferry/internal/registry"
)

// lyingImage serves an image whose manifest, config or layers are not
// what they claim, the way a hostile registry would.
type lyingImage struct {
	v1.Image
	configSize int64 // declared config size, 0 keeps the real one
	layers     []v1.Layer
	configRead atomic.Int64
}

func (l *lyingImage) Manifest() (*v1.Manifest, error) {
	m, err := l.Image.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	if l.configSize != 0 {
		m.Config.Size = l.configSize
	}
	for i, ly := range l.layers {
		m.Layers[i].Size, _ = ly.Size()
		m.Layers[i].Digest, _ = ly.Digest()
	}
	return m, nil
}

func (l *lyingImage) Layers() ([]v1.Layer, error) { return l.layers, nil }

func (l *lyingImage) RawConfigFile() ([]byte, error) {
	l.configRead.Add(1)
	return l.Image.RawConfigFile()
}

func (l *lyingImage) ConfigFile() (*v1.ConfigFile, error) {
	l.configRead.Add(1)
	return l.Image.ConfigFile()
}

// lyingLayer claims a digest and size but serves body; the first breaks
// reads stop with a connection reset after half the body.
type lyingLayer struct {
	v1.Layer
	digest v1.Hash
	size   int64
	body   []byte
	breaks int
	opened atomic.Int64
}

func (l *lyingLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *lyingLayer) Size() (int64, error)     { return l.size, nil }
func (l *lyingLayer) Compressed() (io.ReadCloser, error) {
	n := l.opened.Add(1)
	if int(n) <= l.breaks {
		return io.NopCloser(io.MultiReader(bytes.NewReader(l.body[:len(l.body)/2]), errReader{errors.New("read: connection reset by peer")})), nil
	}
	return io.NopCloser(bytes.NewReader(l.body)), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// honest returns the compressed bytes, digest and size of a layer.
func honest(t *testing.T, l v1.Layer) ([]byte, v1.Hash, int64) {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	d, _ := l.Digest()
	return b, d, int64(len(b))
}

func TestReadVerifiesBeforeUse(t *testing.T) {
	good := layer(t, entry{name: "configs/p/catalog.json", body: `{"schema":"olm.package","name":"p"}`})
	body, digest, size := honest(t, good)
	swapped := bytes.Clone(body)
	swapped[len(swapped)-1] ^= 0xff
	onlyTransfer := func(ctx context.Context, fn func(context.Context) error) error {
		return registry.RetryPolicy{TransferAttempts: 3, Initial: time.Millisecond}.WithDefaults().Transfer(ctx, nil, nil, fn)
	}
	for _, tc := range []struct {
		name       string
		layer      *lyingLayer
		configSize int64
		limits     Limits
		transfer   bool
		want       string // error text; "" for success
		opens      int64  // how often the layer was read
		configRead bool
	}{
		{name: "honest", layer: &lyingLayer{digest: digest, size: size, body: body}, opens: 1, configRead: true},
		{name: "same size, other bytes", layer: &lyingLayer{digest: digest, size: size, body: swapped},
			want: "content does not match its digest: want " + digest.String(), opens: 1, configRead: true},
		{name: "longer than declared", layer: &lyingLayer{digest: digest, size: size - 1, body: body},
			want: "more than the declared", opens: 1, configRead: true},
		{name: "shorter than declared", layer: &lyingLayer{digest: digest, size: size + 1, body: body},
			want: "body ended after", opens: 1, configRead: true},
		{name: "declared size over the blob limit", layer: &lyingLayer{digest: digest, size: 3 << 30, body: body},
			want: "3221225472 bytes exceeds the 2147483648-byte limit", opens: 0},
		{name: "config declared 1.5 GiB", layer: &lyingLayer{digest: digest, size: size, body: body}, configSize: 3 << 29,
			want: "1610612736 bytes exceeds the 4194304-byte limit", opens: 0},
		{name: "reset mid-body is read again", layer: &lyingLayer{digest: digest, size: size, body: body, breaks: 2}, transfer: true,
			opens: 3, configRead: true},
		{name: "reset mid-body without retries", layer: &lyingLayer{digest: digest, size: size, body: body, breaks: 1},
			want: "connection reset by peer", opens: 1, configRead: true},
		{name: "resets past the transfer attempts", layer: &lyingLayer{digest: digest, size: size, body: body, breaks: 5}, transfer: true,
			want: "connection reset by peer", opens: 3, configRead: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := &lyingImage{Image: image(t, fbcLabel, good), configSize: tc.configSize, layers: []v1.Layer{tc.layer}}
			tmp := t.TempDir()
			opts := ReadOptions{Limits: tc.limits, TempDir: tmp, Name: "quay.example/cat@sha256:abc"}
			if tc.transfer {
				opts.Transfer = onlyTransfer
			}
			c, err := Read(t.Context(), img, opts)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.want == "":
				if diff := cmp.Diff(map[string]string{"p/catalog.json": `{"schema":"olm.package","name":"p"}`}, files(t, c.FS)); diff != "" {
					t.Errorf("files (-want +got):\n%s", diff)
				}
				c.Close()
			case err == nil:
				t.Fatalf("accepted; want an error containing %q", tc.want)
			case !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "quay.example/cat@sha256:abc"):
				t.Errorf("error %q: want it to contain %q and name the image", err, tc.want)
			}
			if n := tc.layer.opened.Load(); n != tc.opens {
				t.Errorf("layer read %d times, want %d", n, tc.opens)
			}
			if got := img.configRead.Load() > 0; got != tc.configRead {
				t.Errorf("config read: %v, want %v", got, tc.configRead)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("left behind in the temporary directory: %v", left)
			}
		})
	}
}

func TestReadBoundsExpansion(t *testing.T) {
	// A 64 MiB file of zeros outside the catalog: nothing is kept, but the
	// bytes must still be decompressed to reach the next entry.
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	tw.WriteHeader(&tar.Header{Name: "usr/share/zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 64 << 20})
	tw.Write(make([]byte, 64<<20))
	tw.WriteHeader(&tar.Header{Name: "configs/p/catalog.json", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("{}"))
	tw.Close()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	raw := gz.Bytes()
	bomb, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	_, err = Read(t.Context(), image(t, fbcLabel, bomb), ReadOptions{Limits: Limits{MaxExpandBytes: 16 << 20}, TempDir: tmp})
	if !errors.Is(err, ErrExpansion) {
		t.Fatalf("a %d-byte layer expanding to 64 MiB: %v, want ErrExpansion", len(raw), err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if _, err := read(t, image(t, fbcLabel, bomb), DefaultLimits()); err != nil {
		t.Errorf("within the default budget: %v", err)
	}
}

func TestReadZstdLayer(t *testing.T) {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	tw.WriteHeader(&tar.Header{Name: "configs/p/catalog.json", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("{}"))
	tw.Close()
	var zs bytes.Buffer
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	raw := zs.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	c, err := read(t, image(t, fbcLabel, l), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"p/catalog.json": "{}"}, files(t, c.FS)); diff != "" {
		t.Error(diff)
	}
}

// TestReadOverlay: a higher layer decides a path for every lower one,
// whether it put a file or a directory there.
func TestReadOverlay(t *testing.T) {
	lower := layer(t,
		entry{name: "configs/a", body: "lower file where the upper layer has a directory"},
		entry{name: "configs/b/catalog.json", body: "lower file under the upper layer's file b"},
		entry{name: "configs/c/catalog.json", body: "c"},
	)
	upper := layer(t,
		entry{name: "configs/a/catalog.json", body: "a"},
		entry{name: "configs/b", body: "b is a file up here"},
	)
	c, err := read(t, image(t, fbcLabel, lower, upper), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a/catalog.json": "a", "b": "b is a file up here", "c/catalog.json": "c"}
	if diff := cmp.Diff(want, files(t, c.FS)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestReadRefusesDeepPaths(t *testing.T) {
	deep := "configs/" + strings.Repeat("d/", 40) + "catalog.json"
	_, err := read(t, image(t, fbcLabel, layer(t, entry{name: deep, body: "{}"})), DefaultLimits())
	var unsafe *UnsafeEntryError
	if !errors.As(err, &unsafe) || !strings.Contains(unsafe.Reason, "deeper than") {
		t.Errorf("a path 40 directories deep: %v", err)
	}
}
