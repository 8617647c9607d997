package reconcile

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/catalogimage"
	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/internal/sqlite"
	"github.com/ferry-gitops/ferry/spec"
)

// Observer reads the outside world a plan is computed against: source
// catalogs, bundle images and base images.
type Observer struct {
	Registry *registry.Client
	// SpecDir is the spec directory on disk, for local catalog sources.
	SpecDir string
	Limits  catalogimage.Limits
}

// Source is a Catalog's source as observed.
type Source struct {
	Config *fbc.DeclarativeConfig
	// Ref is the source image pinned by digest ("" for a local directory).
	Ref string
	// Format is fbc, sqlite, or "dir" for a local directory.
	Format string
	// Index is the source's multi-arch index, or nil; Image the variant
	// read (nil for a local directory).
	Index v1.ImageIndex
	Image v1.Image
}

// ReadSource loads what a Catalog starts from.
func (o *Observer) ReadSource(ctx context.Context, c *spec.Catalog) (*Source, error) {
	if spec.IsLocalSource(c.Spec.Source) {
		dir := c.Spec.Source
		if rel, ok := c.SourceDir(); ok {
			dir = filepath.Join(o.SpecDir, filepath.FromSlash(rel))
		}
		cfg, err := fbc.LoadFS(ctx, os.DirFS(dir))
		if err != nil {
			return nil, fmt.Errorf("catalog %s: read %s: %w", c.Metadata.Name, dir, err)
		}
		return &Source{Config: cfg, Format: "dir"}, nil
	}
	idx, img, digestRef, err := o.fetchRef(ctx, c, c.Spec.Source)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: source: %w", c.Metadata.Name, err)
	}
	contents, err := catalogimage.Read(img, o.Limits)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: source %s: %w", c.Metadata.Name, c.Spec.Source, err)
	}
	src := &Source{Ref: digestRef, Format: string(contents.Format), Index: idx, Image: img}
	switch contents.Format {
	case catalogimage.FormatFBC:
		src.Config, err = fbc.LoadFS(ctx, contents.FS)
	case catalogimage.FormatSQLite:
		src.Config, err = loadSQLite(ctx, contents.FS)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog %s: source %s: %w", c.Metadata.Name, c.Spec.Source, err)
	}
	return src, nil
}

// loadSQLite hands the database to the SQLite reader, which needs a file.
func loadSQLite(ctx context.Context, fsys fs.FS) (*fbc.DeclarativeConfig, error) {
	data, err := fs.ReadFile(fsys, "index.db")
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "ferry-index-*.db")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return sqlite.Load(ctx, f.Name())
}

// fetch resolves ref and returns its index (if it is one), the image for
// platform, and the reference pinned to the top-level digest.
func (o *Observer) fetch(ctx context.Context, ref, platform string) (v1.ImageIndex, v1.Image, string, error) {
	r, err := o.Registry.Reference(ref)
	if err != nil {
		return nil, nil, "", err
	}
	desc, err := remote.Get(r, o.Registry.Remote(r, remote.WithContext(ctx))...)
	if err != nil {
		return nil, nil, "", err
	}
	pinned := r.Context().Digest(desc.Digest.String()).String()
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		return nil, img, pinned, err
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, nil, "", err
	}
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, nil, "", err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, "", err
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(*p) {
			img, err := idx.Image(d.Digest)
			return idx, img, pinned, err
		}
	}
	return nil, nil, "", fmt.Errorf("%s has no %s variant", ref, platform)
}

// Base returns the base a Catalog's image is built on: the source itself
// (index or image) by default, else spec.base.
func (o *Observer) Base(ctx context.Context, c *spec.Catalog, src *Source) (v1.ImageIndex, v1.Image, error) {
	if c.Spec.Base == c.Spec.Source && src.Image != nil {
		return src.Index, src.Image, nil
	}
	idx, img, _, err := o.fetchRef(ctx, c, c.Spec.Base)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog %s: base: %w", c.Metadata.Name, err)
	}
	return idx, img, nil
}

// BuildImage builds the catalog image on its base: an index when the base
// is multi-arch, one image otherwise. The result is deterministic, so its
// digest is known before anything is pushed.
func BuildImage(idx v1.ImageIndex, img v1.Image, configs fs.FS) (v1.Hash, remote.Taggable, error) {
	if idx != nil {
		out, err := catalogimage.BuildIndex(idx, configs, catalogimage.BuildOptions{})
		if err != nil {
			return v1.Hash{}, nil, err
		}
		d, err := out.Digest()
		return d, out, err
	}
	out, err := catalogimage.Build(img, configs, catalogimage.BuildOptions{})
	if err != nil {
		return v1.Hash{}, nil, err
	}
	d, err := out.Digest()
	return d, out, err
}
