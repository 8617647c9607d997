package reconcile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-gitops/ferry/spec"
)

// OCI layouts (oci://DIR[:tag]) are read here: a catalog built with opm
// into a layout, or carried into an enclave as one, is a source, base or
// bundle like an image in a registry, with the same platform selection and,
// since nothing in between checks it, every manifest, config and layer
// checked against its digest as it is read.

// refNameAnnotation is where OCI layouts record an image's name: a tag,
// or a whole reference (skopeo and oc-mirror write either).
const refNameAnnotation = "org.opencontainers.image.ref.name"

// maxLayoutManifest bounds index.json and every manifest read from a
// layout before its digest is known to match.
const maxLayoutManifest = 4 << 20

// fetchRef reads ref, named by Catalog c: an OCI layout (relative paths
// are relative to c's file), or a registry image through fetch.
func (o *Observer) fetchRef(ctx context.Context, c *spec.Catalog, ref string) (v1.ImageIndex, v1.Image, string, error) {
	if !spec.IsOCISource(ref) {
		return o.fetch(ctx, ref, c.Spec.Platform)
	}
	dir, inTree := spec.OCIDir(c.Origin, ref)
	if inTree {
		dir = filepath.Join(o.SpecDir, filepath.FromSlash(dir))
	}
	_, tag := spec.OCIPath(ref)
	return readLayout(dir, tag, c.Spec.Platform, ref)
}

// readLayout finds tag in the layout at dir (the only image when tag is
// "") and returns it as fetch does: the index if it is one, the image for
// platform, and ref pinned to the top-level digest.
func readLayout(dir, tag, platform, ref string) (v1.ImageIndex, v1.Image, string, error) {
	root, err := layout.FromPath(dir)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: not an OCI image layout: %w", ref, err)
	}
	raw, err := readLimited(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", ref, err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: index.json: %w", ref, err)
	}
	desc, err := pickManifest(im.Manifests, tag)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", ref, err)
	}
	written, _ := spec.OCIPath(ref)
	pinned := "oci://" + written + "@" + desc.Digest.String()
	if !desc.MediaType.IsIndex() {
		img, err := layoutImage(root, desc)
		return nil, img, pinned, err
	}
	idx, err := layoutIndex(root, desc)
	if err != nil {
		return nil, nil, "", err
	}
	img, err := platformImage(idx, platform, ref)
	return idx, img, pinned, err
}

// pickManifest finds the descriptor a tag names.
func pickManifest(ds []v1.Descriptor, tag string) (v1.Descriptor, error) {
	var names []string
	for _, d := range ds {
		n := d.Annotations[refNameAnnotation]
		names = append(names, n)
		if tag != "" && (n == tag || strings.HasSuffix(n, ":"+tag)) {
			return d, nil
		}
	}
	switch {
	case tag == "" && len(ds) == 1:
		return ds[0], nil
	case len(ds) == 0:
		return v1.Descriptor{}, errors.New("the layout holds no image")
	case tag == "":
		return v1.Descriptor{}, fmt.Errorf("the layout holds %d images (%s): name one as oci://DIR:tag", len(ds), strings.Join(names, ", "))
	}
	return v1.Descriptor{}, fmt.Errorf("no image tagged %q in the layout (it has %s)", tag, strings.Join(names, ", "))
}

// platformImage picks the child of idx for platform, as fetch does.
func platformImage(idx v1.ImageIndex, platform, ref string) (v1.Image, error) {
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(*p) {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("%s has no %s variant", ref, platform)
}

func readLimited(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLayoutManifest+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxLayoutManifest {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Base(file), maxLayoutManifest)
	}
	return data, nil
}

// readBlob reads a small blob whole and checks it against d.
func readBlob(root layout.Path, d v1.Descriptor) ([]byte, error) {
	if d.Size > maxLayoutManifest {
		return nil, fmt.Errorf("blob %s: %d bytes is more than the %d allowed", d.Digest, d.Size, maxLayoutManifest)
	}
	rc, err := root.Blob(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxLayoutManifest+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if err := checkDigest(d, data); err != nil {
		return nil, err
	}
	return data, nil
}

func checkDigest(d v1.Descriptor, data []byte) error {
	if d.Digest.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: only sha256 digests are supported", d.Digest)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != d.Digest.Hex || (d.Size > 0 && int64(len(data)) != d.Size) {
		return fmt.Errorf("blob %s: content does not match its digest (sha256:%s, %d bytes)", d.Digest, got, len(data))
	}
	return nil
}

// layoutIndex is an index read from a layout, its manifest verified.
type verifiedIndex struct {
	root layout.Path
	desc v1.Descriptor
	raw  []byte
	im   *v1.IndexManifest
}

var _ v1.ImageIndex = (*verifiedIndex)(nil)

func layoutIndex(root layout.Path, d v1.Descriptor) (*verifiedIndex, error) {
	raw, err := readBlob(root, d)
	if err != nil {
		return nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", d.Digest, err)
	}
	return &verifiedIndex{root: root, desc: d, raw: raw, im: im}, nil
}

func (x *verifiedIndex) MediaType() (types.MediaType, error) {
	if x.im.MediaType != "" {
		return x.im.MediaType, nil
	}
	return x.desc.MediaType, nil
}
func (x *verifiedIndex) Digest() (v1.Hash, error)                  { return x.desc.Digest, nil }
func (x *verifiedIndex) Size() (int64, error)                      { return int64(len(x.raw)), nil }
func (x *verifiedIndex) IndexManifest() (*v1.IndexManifest, error) { return x.im.DeepCopy(), nil }
func (x *verifiedIndex) RawManifest() ([]byte, error)              { return slices.Clone(x.raw), nil }

func (x *verifiedIndex) child(h v1.Hash) (v1.Descriptor, error) {
	for _, d := range x.im.Manifests {
		if d.Digest == h {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("index %s has no child %s", x.desc.Digest, h)
}

func (x *verifiedIndex) Image(h v1.Hash) (v1.Image, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return layoutImage(x.root, d)
}

func (x *verifiedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return layoutIndex(x.root, d)
}

// layoutImage is an image of a layout whose manifest and config are
// checked when read and whose layers are checked as they stream.
func layoutImage(root layout.Path, d v1.Descriptor) (v1.Image, error) {
	raw, err := readBlob(root, d)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	cfg, err := readBlob(root, m.Config)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: config: %w", d.Digest, err)
	}
	return partial.CompressedToImage(&imageCore{root: root, desc: d, raw: raw, m: m, cfg: cfg})
}

type imageCore struct {
	root layout.Path
	desc v1.Descriptor
	raw  []byte
	m    *v1.Manifest
	cfg  []byte
}

func (c *imageCore) RawConfigFile() ([]byte, error) { return slices.Clone(c.cfg), nil }
func (c *imageCore) RawManifest() ([]byte, error)   { return slices.Clone(c.raw), nil }
func (c *imageCore) MediaType() (types.MediaType, error) {
	if c.m.MediaType != "" {
		return c.m.MediaType, nil
	}
	return c.desc.MediaType, nil
}

func (c *imageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == c.m.Config.Digest {
		return &layoutBlob{root: c.root, desc: c.m.Config}, nil
	}
	for _, l := range c.m.Layers {
		if l.Digest == h {
			return &layoutBlob{root: c.root, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("manifest %s has no layer %s", c.desc.Digest, h)
}

// layoutBlob is a layer of a layout, read only once its bytes match its
// digest.
type layoutBlob struct {
	root layout.Path
	desc v1.Descriptor
}

func (b *layoutBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *layoutBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *layoutBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }

func (b *layoutBlob) Compressed() (io.ReadCloser, error) {
	if b.desc.Digest.Algorithm != "sha256" {
		return nil, fmt.Errorf("blob %s: only sha256 digests are supported", b.desc.Digest)
	}
	// A first pass proves the blob before anything parses it (a bad
	// layer must fail as a bad digest, not as whatever a decompressor
	// makes of it); the second pass checks again in case the file changed
	// in between.
	first, err := b.root.Blob(b.desc.Digest)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, &verifyingReader{rc: first, h: sha256.New(), want: b.desc})
	first.Close()
	if err != nil {
		return nil, err
	}
	rc, err := b.root.Blob(b.desc.Digest)
	if err != nil {
		return nil, err
	}
	return &verifyingReader{rc: rc, h: sha256.New(), want: b.desc}, nil
}

type verifyingReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	n    int64
	want v1.Descriptor
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if r.want.Size > 0 && r.n > r.want.Size {
		return n, fmt.Errorf("blob %s: more than its %d bytes", r.want.Digest, r.want.Size)
	}
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(r.h.Sum(nil)); got != r.want.Digest.Hex || (r.want.Size > 0 && r.n != r.want.Size) {
			return n, fmt.Errorf("blob %s: content does not match its digest (sha256:%s, %d bytes)", r.want.Digest, got, r.n)
		}
	}
	return n, err
}

func (r *verifyingReader) Close() error { return r.rc.Close() }
