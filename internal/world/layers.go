package world

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch stands in for every timestamp the world writes (tar entries, image
// configs): a fixed instant keeps digests a function of seed and input only.
var epoch = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// blobLayer is a gzip-compressed tar layer held in memory with both digests
// computed once. Worlds hold thousands of layers of a few KiB, and
// go-containerregistry's generic layers would re-hash them on every access.
type blobLayer struct {
	compressed []byte
	digest     v1.Hash
	diffID     v1.Hash
	mediaType  types.MediaType
}

var _ v1.Layer = (*blobLayer)(nil)

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *blobLayer) Size() (int64, error)                { return int64(len(l.compressed)), nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) {
	zr, err := gzip.NewReader(bytes.NewReader(l.compressed))
	if err != nil {
		return nil, err
	}
	return zr, nil
}

// withMediaType returns l as another manifest flavour would list it; the
// bytes, and so the digests, are the same for Docker and OCI gzip layers.
func (l *blobLayer) withMediaType(mt types.MediaType) *blobLayer {
	if l.mediaType == mt {
		return l
	}
	c := *l
	c.mediaType = mt
	return &c
}

// file is one regular file of a layer.
type file struct {
	Name string
	Data []byte
	Mode int64
}

// newTarLayer packs files (parent directories are added, as image builders
// do, so unpackers that expect them find them) into a deterministic
// tar.gz layer: fixed timestamps and owners, sorted entries, a gzip header
// without name or time.
func newTarLayer(files []file, mt types.MediaType) (*blobLayer, error) {
	sorted := append([]file(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dirs := map[string]bool{}
	for _, f := range sorted {
		name := strings.TrimPrefix(path.Clean("/"+f.Name), "/")
		var parents []string
		for d := path.Dir(name); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			dirs[parents[i]] = true
			if err := tw.WriteHeader(&tar.Header{
				Typeflag: tar.TypeDir, Name: parents[i] + "/", Mode: 0o755,
				ModTime: epoch, Format: tar.FormatPAX,
			}); err != nil {
				return nil, err
			}
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(f.Data)),
			ModTime: epoch, Format: tar.FormatPAX,
		}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}

	var gz bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &blobLayer{
		compressed: gz.Bytes(),
		digest:     sha256Hash(gz.Bytes()),
		diffID:     sha256Hash(raw.Bytes()),
		mediaType:  mt,
	}, nil
}

// gzipWriters recycles compressors: a flate writer allocates about a MiB,
// and a world compresses thousands of tiny layers.
var gzipWriters = sync.Pool{New: func() any {
	// BestSpeed: layer payloads are random bytes that do not compress, so a
	// higher level only burns the CPU the pushes need.
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum[:])}
}

// rng returns a generator whose stream is a function of the world seed and
// a label only, so an image's bytes do not depend on build order or
// concurrency.
func rng(seed int64, label string) *rand.ChaCha8 {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seed))
	h.Write(b[:])
	h.Write([]byte(label))
	var key [32]byte
	copy(key[:], h.Sum(nil))
	return rand.NewChaCha8(key)
}

// randomBytes returns n pseudo-random bytes for label.
func randomBytes(seed int64, label string, n int64) []byte {
	b := make([]byte, n)
	_, _ = rng(seed, label).Read(b)
	return b
}

// pick returns a small deterministic number for label, for choices such as
// "is this image multi-arch".
func pick(seed int64, label string) uint64 {
	return rng(seed, "pick\x00"+label).Uint64()
}
