package world

import (
	"bytes"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// flavour is the manifest family of an image: registries and clients treat
// Docker schema 2 and OCI differently often enough that a realistic world
// holds both.
type flavour int

const (
	docker flavour = iota
	oci
)

func (f flavour) manifestType() types.MediaType {
	if f == oci {
		return types.OCIManifestSchema1
	}
	return types.DockerManifestSchema2
}

func (f flavour) configType() types.MediaType {
	if f == oci {
		return types.OCIConfigJSON
	}
	return types.DockerConfigJSON
}

func (f flavour) layerType() types.MediaType {
	if f == oci {
		return types.OCILayer
	}
	return types.DockerLayer
}

func (f flavour) indexType() types.MediaType {
	if f == oci {
		return types.OCIImageIndex
	}
	return types.DockerManifestList
}

// memImage is an image whose manifest, config and layers are all in memory
// and serialised once, so its digest is fixed at construction.
type memImage struct {
	manifest []byte
	config   []byte
	mt       types.MediaType
	layers   map[v1.Hash]*blobLayer
}

var _ partial.CompressedImageCore = (*memImage)(nil)

func (m *memImage) RawConfigFile() ([]byte, error)      { return m.config, nil }
func (m *memImage) MediaType() (types.MediaType, error) { return m.mt, nil }
func (m *memImage) RawManifest() ([]byte, error)        { return m.manifest, nil }
func (m *memImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := m.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("layer %s not in image", h)
}

// imageSpec is what an image is made of.
type imageSpec struct {
	flavour  flavour
	platform v1.Platform
	layers   []*blobLayer
	config   v1.Config // labels, entrypoint, cmd, env
	history  []string  // created_by per layer
}

// newImage serialises spec into an image. The config carries a fixed
// creation time and one history entry per layer, as a builder would write.
func newImage(spec imageSpec) (v1.Image, error) {
	cf := v1.ConfigFile{
		Architecture: spec.platform.Architecture,
		OS:           spec.platform.OS,
		Variant:      spec.platform.Variant,
		Created:      v1.Time{Time: epoch},
		Config:       spec.config,
		RootFS:       v1.RootFS{Type: "layers"},
	}
	m := &memImage{mt: spec.flavour.manifestType(), layers: map[v1.Hash]*blobLayer{}}
	man := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     spec.flavour.manifestType(),
	}
	for i, l := range spec.layers {
		l = l.withMediaType(spec.flavour.layerType())
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, l.diffID)
		createdBy := "ADD layer"
		if i < len(spec.history) {
			createdBy = spec.history[i]
		}
		cf.History = append(cf.History, v1.History{Created: v1.Time{Time: epoch}, CreatedBy: createdBy})
		man.Layers = append(man.Layers, v1.Descriptor{
			MediaType: l.mediaType,
			Size:      int64(len(l.compressed)),
			Digest:    l.digest,
		})
		m.layers[l.digest] = l
	}
	cfg, err := json.Marshal(cf)
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	m.config = cfg
	man.Config = v1.Descriptor{
		MediaType: spec.flavour.configType(),
		Size:      int64(len(cfg)),
		Digest:    sha256Hash(cfg),
	}
	if m.manifest, err = json.Marshal(man); err != nil {
		return nil, fmt.Errorf("marshal manifest: %w", err)
	}
	return partial.CompressedToImage(m)
}

// memIndex is a multi-arch image: an index over in-memory images.
type memIndex struct {
	manifest []byte
	mt       types.MediaType
	images   map[v1.Hash]v1.Image
}

var _ v1.ImageIndex = (*memIndex)(nil)

func (x *memIndex) MediaType() (types.MediaType, error) { return x.mt, nil }
func (x *memIndex) Digest() (v1.Hash, error)            { return sha256Hash(x.manifest), nil }
func (x *memIndex) Size() (int64, error)                { return int64(len(x.manifest)), nil }
func (x *memIndex) RawManifest() ([]byte, error)        { return x.manifest, nil }
func (x *memIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(x.manifest))
}
func (x *memIndex) Image(h v1.Hash) (v1.Image, error) {
	if img, ok := x.images[h]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("image %s not in index", h)
}
func (x *memIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("index %s not in index", h)
}

// newIndex lists children (in the given order, one per platform) in an
// index of the given flavour.
func newIndex(f flavour, children []v1.Image) (v1.ImageIndex, error) {
	x := &memIndex{mt: f.indexType(), images: map[v1.Hash]v1.Image{}}
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: f.indexType()}
	for _, img := range children {
		desc, err := partial.Descriptor(img)
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		desc.Platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
		im.Manifests = append(im.Manifests, *desc)
		x.images[desc.Digest] = img
	}
	var err error
	if x.manifest, err = json.Marshal(im); err != nil {
		return nil, fmt.Errorf("marshal index: %w", err)
	}
	return x, nil
}
