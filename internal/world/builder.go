package world

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Labels the world puts on its images.
const (
	// LabelSource names the catalog reference an image stands in for, so a
	// human looking at the registry can tell what is what.
	LabelSource = "io.ferry.world.source"

	labelIndexConfigs  = "operators.operatorframework.io.index.configs.v1"
	labelIndexDatabase = "operators.operatorframework.io.index.database.v1"
)

// builder holds what a build shares across goroutines: the pusher, the
// base-layer pools and the counters.
type builder struct {
	opts     Options
	nameOpts []name.Option
	pusher   *remote.Pusher

	poolMu sync.Mutex
	pools  map[string][]*blobLayer // by platform

	// mountFrom remembers a repository holding each pushed blob, so later
	// pushes of shared base layers into other repositories are cross-repo
	// mounts (one request, no data) instead of uploads, as skopeo and oc
	// mirror do. A registry that refuses a mount gets an upload.
	mountMu   sync.Mutex
	mountFrom map[v1.Hash]name.Repository

	// repos serialises pushes into one repository. go-containerregistry's
	// Pusher shares one writer per repository, and a push that mounts
	// from a repository the writer has no token scope for yet replaces the
	// writer's HTTP client while other pushes use it (a data race; the
	// copy engine gates the same writer in internal/mirror). Pushes into
	// different repositories still run in parallel.
	repos sync.Map // repository -> *sync.Mutex

	statsMu   sync.Mutex
	blobs     map[v1.Hash]int64
	manifests map[v1.Hash]bool
	images    int
	indexes   int
}

func newBuilder(opts Options) (*builder, error) {
	// One layer at a time within a push: a push whose layers mount from
	// repositories the writer has no scope for yet updates the writer's
	// client from each layer's goroutine (the race described at repos).
	// Images are pushed in parallel, which is where a build's time goes.
	p, err := remote.NewPusher(append(append([]remote.Option(nil), opts.Remote...), remote.WithJobs(1))...)
	if err != nil {
		return nil, fmt.Errorf("registry client: %w", err)
	}
	b := &builder{
		opts:      opts,
		pusher:    p,
		pools:     map[string][]*blobLayer{},
		mountFrom: map[v1.Hash]name.Repository{},
		blobs:     map[v1.Hash]int64{},
		manifests: map[v1.Hash]bool{},
	}
	if opts.Insecure {
		b.nameOpts = append(b.nameOpts, name.Insecure)
	}
	return b, nil
}

// basePool returns the shared base layers of a platform: different
// architectures have different base layers, as real images do.
func (b *builder) basePool(p v1.Platform) ([]*blobLayer, error) {
	key := p.OS + "/" + p.Architecture + "/" + p.Variant
	b.poolMu.Lock()
	defer b.poolMu.Unlock()
	if pool, ok := b.pools[key]; ok {
		return pool, nil
	}
	pool := make([]*blobLayer, b.opts.BaseLayers)
	for i := range pool {
		label := fmt.Sprintf("base/%s/%d", key, i)
		l, err := newTarLayer([]file{
			{Name: fmt.Sprintf("usr/lib/ferry-world/base-%d.bin", i), Data: randomBytes(b.opts.Seed, label, b.opts.BaseLayerSize)},
			{Name: fmt.Sprintf("etc/ferry-world/base-%d", i), Data: []byte(label + "\n")},
		}, docker.layerType())
		if err != nil {
			return nil, err
		}
		pool[i] = l
	}
	b.pools[key] = pool
	return pool, nil
}

// flavourOf splits images between Docker schema 2 and OCI by hash.
func (b *builder) flavourOf(key string) flavour {
	if pick(b.opts.Seed, "flavour\x00"+key)%2 == 0 {
		return docker
	}
	return oci
}

// syntheticImage builds the stand-in for a related image: one to three base
// layers from the pool plus a unique top layer; a multi-arch index for about
// one image in MultiArchEvery.
func (b *builder) syntheticImage(p *plannedImage) (remote.Taggable, error) {
	f := b.flavourOf(p.key)
	platforms := []v1.Platform{{OS: "linux", Architecture: "amd64"}}
	multi := b.opts.MultiArchEvery > 0 && pick(b.opts.Seed, "multiarch\x00"+p.key)%uint64(b.opts.MultiArchEvery) == 0
	if multi {
		platforms = b.opts.Platforms
	}
	var children []v1.Image
	for _, pl := range platforms {
		img, err := b.platformImage(p, pl, f)
		if err != nil {
			return nil, err
		}
		if !multi {
			return img, nil
		}
		children = append(children, img)
	}
	return newIndex(f, children)
}

func (b *builder) platformImage(p *plannedImage, pl v1.Platform, f flavour) (v1.Image, error) {
	pool, err := b.basePool(pl)
	if err != nil {
		return nil, err
	}
	h := pick(b.opts.Seed, "layers\x00"+p.key)
	n := 1 + int(h%3)
	if n > len(pool) {
		n = len(pool)
	}
	start := int((h >> 8) % uint64(len(pool)))
	var layers []*blobLayer
	var history []string
	for i := 0; i < n; i++ {
		layers = append(layers, pool[(start+i)%len(pool)])
		history = append(history, fmt.Sprintf("ADD base-%d.tar /", (start+i)%len(pool)))
	}
	sum := sha256.Sum256([]byte(p.key))
	dir := fmt.Sprintf("opt/ferry-world/%x", sum[:6])
	top, err := newTarLayer([]file{
		{Name: dir + "/payload.bin", Data: randomBytes(b.opts.Seed, "top\x00"+p.key+"\x00"+pl.Architecture, b.opts.LayerSize)},
		{Name: dir + "/source", Data: []byte(p.key + "\n")},
		{Name: "usr/local/bin/app", Data: []byte("#!/bin/sh\nexec cat /" + dir + "/source\n"), Mode: 0o755},
	}, f.layerType())
	if err != nil {
		return nil, err
	}
	layers = append(layers, top)
	history = append(history, "COPY app /")
	return newImage(imageSpec{
		flavour:  f,
		platform: pl,
		layers:   layers,
		history:  history,
		config: v1.Config{
			Entrypoint: []string{"/usr/local/bin/app"},
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Labels:     map[string]string{LabelSource: p.key},
		},
	})
}

// fbcCatalogConfig is the runtime config `opm generate dockerfile` writes.
func fbcCatalogConfig() v1.Config {
	return v1.Config{
		Entrypoint:   []string{"/bin/opm"},
		Cmd:          []string{"serve", "/configs", "--cache-dir=/tmp/cache"},
		ExposedPorts: map[string]struct{}{"50051/tcp": {}},
		Labels:       map[string]string{labelIndexConfigs: "/configs"},
	}
}

// sqliteCatalogConfig is the runtime config `opm index add` gave index
// images.
func sqliteCatalogConfig() v1.Config {
	return v1.Config{
		Entrypoint:   []string{"/bin/opm"},
		Cmd:          []string{"registry", "serve", "--database", "/database/index.db"},
		ExposedPorts: map[string]struct{}{"50051/tcp": {}},
		Labels:       map[string]string{labelIndexDatabase: "/database/index.db"},
	}
}

// catalogImage puts files on top of two base layers standing in for the opm
// base image (it carries no opm binary: Ferry reads catalog images, it does
// not run them), one child per catalog platform when there are several.
func (b *builder) catalogImage(files []file, cfg v1.Config) (partial.Describable, error) {
	content, err := newTarLayer(files, oci.layerType())
	if err != nil {
		return nil, err
	}
	var children []v1.Image
	for _, pl := range b.opts.CatalogPlatforms {
		pool, err := b.basePool(pl)
		if err != nil {
			return nil, err
		}
		layers := append([]*blobLayer{}, pool[:min(2, len(pool))]...)
		layers = append(layers, content)
		img, err := newImage(imageSpec{
			flavour:  oci,
			platform: pl,
			layers:   layers,
			config:   cfg,
			history:  []string{"ADD base-0.tar /", "ADD base-1.tar /", "ADD catalog /"},
		})
		if err != nil {
			return nil, err
		}
		children = append(children, img)
	}
	if len(children) == 1 {
		b.record(children[0])
		return children[0], nil
	}
	idx, err := newIndex(oci, children)
	if err != nil {
		return nil, err
	}
	b.record(idx)
	return idx, nil
}

// push writes a planned image under its tag or digest and records its
// rewritten reference.
func (b *builder) push(ctx context.Context, p *plannedImage, t remote.Taggable) error {
	d, ok := t.(partial.Describable)
	if !ok {
		return fmt.Errorf("image %s: not describable", p.key)
	}
	dgst, err := d.Digest()
	if err != nil {
		return err
	}
	b.record(t)
	var ref name.Reference
	if p.pushTag {
		ref, err = name.NewTag(p.repo+":"+p.src.Tag, b.nameOpts...)
	} else {
		ref, err = name.NewDigest(p.repo+"@"+dgst.String(), b.nameOpts...)
	}
	if err != nil {
		return fmt.Errorf("image %s: target reference: %w", p.key, err)
	}
	if err := b.pushTaggable(ctx, ref, t); err != nil {
		return fmt.Errorf("push %s (for %s): %w", ref, p.key, err)
	}
	p.ref = rewrittenRef(p.repo, p.src, dgst.String())
	return nil
}

// pushTaggable pushes t with mounts for the blobs already in the registry,
// then records t's blobs as mountable from ref's repository.
func (b *builder) pushTaggable(ctx context.Context, ref name.Reference, t remote.Taggable) error {
	from := func(h v1.Hash) (name.Repository, bool) {
		b.mountMu.Lock()
		defer b.mountMu.Unlock()
		r, ok := b.mountFrom[h]
		return r, ok && r.String() != ref.Context().String()
	}
	switch x := t.(type) {
	case v1.ImageIndex:
		t = mountIndex{idx: x, from: from}
	case v1.Image:
		t = mountImage{Image: x, from: from}
	}
	lock, _ := b.repos.LoadOrStore(ref.Context().String(), &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	err := b.pusher.Push(ctx, ref, t)
	lock.(*sync.Mutex).Unlock()
	if err != nil {
		return err
	}
	b.mountMu.Lock()
	defer b.mountMu.Unlock()
	for _, l := range layersOf(t) {
		if _, ok := b.mountFrom[l]; !ok {
			b.mountFrom[l] = ref.Context()
		}
	}
	return nil
}

// layersOf lists the layer digests of an image or of an index's children.
func layersOf(t remote.Taggable) []v1.Hash {
	var imgs []v1.Image
	switch x := t.(type) {
	case mountIndex:
		if im, err := x.IndexManifest(); err == nil {
			for _, m := range im.Manifests {
				if img, err := x.idx.Image(m.Digest); err == nil {
					imgs = append(imgs, img)
				}
			}
		}
	case mountImage:
		imgs = append(imgs, x.Image)
	}
	var out []v1.Hash
	for _, img := range imgs {
		if m, err := img.Manifest(); err == nil {
			for _, l := range m.Layers {
				out = append(out, l.Digest)
			}
		}
	}
	return out
}

// mountImage offers the layers from knows as mountable from there.
type mountImage struct {
	v1.Image
	from func(v1.Hash) (name.Repository, bool)
}

func (m mountImage) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = m.mountable(l)
	}
	return out, nil
}

func (m mountImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := m.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return m.mountable(l), nil
}

func (m mountImage) mountable(l v1.Layer) v1.Layer {
	h, err := l.Digest()
	if err != nil {
		return l
	}
	repo, ok := m.from(h)
	if !ok {
		return l
	}
	return &remote.MountableLayer{Layer: l, Reference: repo.Digest(h.String())}
}

// mountIndex is mountImage for an index's children. The index is a named
// field: embedded, its type name would shadow the ImageIndex method.
type mountIndex struct {
	idx  v1.ImageIndex
	from func(v1.Hash) (name.Repository, bool)
}

var _ v1.ImageIndex = mountIndex{}

func (m mountIndex) MediaType() (types.MediaType, error)       { return m.idx.MediaType() }
func (m mountIndex) Digest() (v1.Hash, error)                  { return m.idx.Digest() }
func (m mountIndex) Size() (int64, error)                      { return m.idx.Size() }
func (m mountIndex) IndexManifest() (*v1.IndexManifest, error) { return m.idx.IndexManifest() }
func (m mountIndex) RawManifest() ([]byte, error)              { return m.idx.RawManifest() }
func (m mountIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return m.idx.ImageIndex(h)
}
func (m mountIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := m.idx.Image(h)
	if err != nil {
		return nil, err
	}
	return mountImage{Image: img, from: m.from}, nil
}

// record counts t's manifests and distinct blobs.
func (b *builder) record(t any) {
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	b.images++
	if x, ok := t.(*memIndex); ok {
		b.indexes++
		b.manifests[sha256Hash(x.manifest)] = true
		for _, img := range x.images {
			b.recordImage(img)
		}
		return
	}
	if img, ok := t.(v1.Image); ok {
		b.recordImage(img)
	}
}

func (b *builder) recordImage(img v1.Image) {
	if m, err := img.RawManifest(); err == nil {
		b.manifests[sha256Hash(m)] = true
	}
	if m, err := img.Manifest(); err == nil {
		b.blobs[m.Config.Digest] = m.Config.Size
		for _, l := range m.Layers {
			b.blobs[l.Digest] = l.Size
		}
	}
}

func (b *builder) stats() Stats {
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	s := Stats{Images: b.images, Indexes: b.indexes, Manifests: len(b.manifests), Blobs: len(b.blobs)}
	for _, n := range b.blobs {
		s.Bytes += n
	}
	return s
}
