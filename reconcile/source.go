package reconcile

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/catalogimage"
	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/internal/safefs"
	"github.com/ferry-gitops/ferry/internal/sqlite"
	"github.com/ferry-gitops/ferry/spec"
)

// Observer reads the outside world a plan is computed against: source
// catalogs, bundle images and base images.
type Observer struct {
	Registry *registry.Client
	// SpecDir is the spec directory on disk, for local catalog sources.
	SpecDir string
	// Limits bound what reading one image may cost; unset fields take
	// catalogimage.DefaultLimits' values.
	Limits catalogimage.Limits
	// TempDir is where image layers are checked and catalogs extracted
	// while they are read; "" is os.TempDir(). Nothing stays there.
	TempDir string
}

// readOptions are how images are read: the Observer's limits and temporary
// directory, and the registry client's policy for downloads that break off.
func (o *Observer) readOptions(name string) catalogimage.ReadOptions {
	return catalogimage.ReadOptions{Limits: o.Limits, TempDir: o.TempDir, Transfer: o.Registry.Transfer, Name: name}
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
		// Links may not leave the spec directory (or an absolute source
		// directory), and only regular files are read: validation refused
		// the rest already, and this holds if the tree changed since.
		root, rel := c.Spec.Source, "."
		if r, ok := c.SourceDir(); ok {
			root, rel = o.SpecDir, r
		}
		dir := filepath.Join(root, filepath.FromSlash(rel))
		view, err := safefs.Open(root, safefs.Options{FollowSymlinks: true, MaxFileSize: o.Limits.MaxFileBytes})
		if err != nil {
			return nil, fmt.Errorf("catalog %s: read %s: %w", c.Metadata.Name, dir, err)
		}
		defer view.Close()
		sub, err := view.Sub(rel)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: read %s: %w", c.Metadata.Name, dir, err)
		}
		cfg, err := fbc.LoadFS(ctx, sub)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: read %s: %w", c.Metadata.Name, dir, err)
		}
		return &Source{Config: cfg, Format: "dir"}, nil
	}
	idx, img, digestRef, err := o.fetchRef(ctx, c, c.Spec.Source)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: source %s: %w", c.Metadata.Name, c.Spec.Source, err)
	}
	contents, err := catalogimage.Read(ctx, img, o.readOptions(digestRef))
	if err != nil {
		return nil, fmt.Errorf("catalog %s: source: %w", c.Metadata.Name, err)
	}
	defer contents.Close()
	src := &Source{Ref: digestRef, Format: string(contents.Format), Index: idx, Image: img}
	switch contents.Format {
	case catalogimage.FormatFBC:
		src.Config, err = fbc.LoadFS(ctx, contents.FS)
	case catalogimage.FormatSQLite:
		src.Config, err = sqlite.Load(ctx, filepath.Join(contents.Root, "index.db"))
	}
	if err != nil {
		return nil, fmt.Errorf("catalog %s: source %s: %w", c.Metadata.Name, digestRef, err)
	}
	return src, nil
}

// fetch resolves ref and returns its index (if it is one), the image for
// platform, and the reference pinned to the top-level digest. Manifests are
// read again from the start when their stream broke off.
func (o *Observer) fetch(ctx context.Context, ref, platform string) (v1.ImageIndex, v1.Image, string, error) {
	r, err := o.Registry.Reference(ref)
	if err != nil {
		return nil, nil, "", err
	}
	var desc *remote.Descriptor
	err = o.Registry.Transfer(ctx, func(ctx context.Context) error {
		desc, err = remote.Get(r, o.Registry.Remote(r, remote.WithContext(ctx))...)
		return err
	})
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
			var img v1.Image
			err := o.Registry.Transfer(ctx, func(context.Context) error {
				var err error
				if img, err = idx.Image(d.Digest); err == nil {
					_, err = img.Manifest()
				}
				return err
			})
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
		return nil, nil, fmt.Errorf("catalog %s: base %s: %w", c.Metadata.Name, c.Spec.Base, err)
	}
	return idx, img, nil
}

// BuildImage builds the catalog image on its base: an index when the base
// is multi-arch, one image otherwise. The result is deterministic, so its
// digest is known before anything is pushed.
func BuildImage(ctx context.Context, idx v1.ImageIndex, img v1.Image, configs fs.FS, opts catalogimage.BuildOptions) (v1.Hash, remote.Taggable, error) {
	if idx != nil {
		out, err := catalogimage.BuildIndex(ctx, idx, configs, opts)
		if err != nil {
			return v1.Hash{}, nil, err
		}
		d, err := out.Digest()
		return d, out, err
	}
	out, err := catalogimage.Build(ctx, img, configs, opts)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	d, err := out.Digest()
	return d, out, err
}
