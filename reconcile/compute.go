package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing/fstest"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/render"
	"github.com/ferry-gitops/ferry/render/mirror"
	"github.com/ferry-gitops/ferry/spec"
)

// Result is everything a plan would produce: the files of the render
// directory and the catalog images to push.
type Result struct {
	// Files maps render-directory paths to contents.
	Files map[string][]byte
	// Images are the built catalog images, by catalog.
	Images []BuiltImage
	// Catalogs are the rendered catalogs, for reports and tests.
	Catalogs []*render.Catalog
	// Mirror is the image set, nil without a Mirror.
	Mirror *mirror.Set
	// Instance names this config repository on the cluster (Instance).
	Instance string
}

// BuiltImage is a catalog image that exists only in memory until pushed.
type BuiltImage struct {
	Catalog string
	Target  string // repository[:tag] from the spec
	Pinned  string // repository@sha256:...
	Digest  string
	Image   remote.Taggable
}

// Compute observes sources, renders every Catalog, builds the catalog
// images in memory and compares the result with the previous render
// (previous may be nil). Nothing is written anywhere.
func (o *Observer) Compute(ctx context.Context, cfg *spec.Config, previous fs.FS) (*Plan, *Result, error) {
	res := &Result{Files: map[string][]byte{}, Instance: Instance(cfg)}
	plan := &Plan{}
	var errs []error
	sources := map[string]*Source{}
	for _, c := range cfg.Catalogs {
		change, err := o.computeCatalog(ctx, c, previous, res, sources)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		plan.Catalogs = append(plan.Catalogs, change)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	plan.Catalogs = append(plan.Catalogs, deletedCatalogs(ctx, cfg, previous)...)
	set, err := o.mirrorSet(ctx, cfg, res, sources)
	if err != nil {
		return nil, nil, fmt.Errorf("mirror: %w", err)
	}
	if set != nil {
		files, err := set.Files(res.MirrorOptions())
		if err != nil {
			return nil, nil, fmt.Errorf("mirror: %w", err)
		}
		for p, b := range files {
			res.Files[p] = b
		}
		res.Mirror = set
		plan.Images = len(set.Images)
	}
	if m := cfg.Mirror; m != nil && m.Spec.OperatorHub != nil {
		b, err := render.OperatorHub(m.Spec.OperatorHub, render.Labels(res.Instance))
		if err != nil {
			return nil, nil, err
		}
		res.Files[render.OperatorHubFile] = b
	}
	plan.Files = diffFiles(previous, res.Files)
	return plan, res, nil
}

// Instance is the config repository's name for itself, the value of the
// instance label on every object it renders: its Mirror's name, or
// "ferry" without a Mirror.
func Instance(cfg *spec.Config) string {
	if cfg.Mirror != nil && cfg.Mirror.Metadata.Name != "" {
		return cfg.Mirror.Metadata.Name
	}
	return "ferry"
}

// MirrorOptions are how the mirror objects of this result are rendered:
// named after the instance, so two config repositories applied to one
// cluster never write each other's mirror sets, and labelled as Ferry's.
func (res *Result) MirrorOptions() mirror.Options {
	o := mirror.DefaultOptions()
	o.NamePrefix = "ferry-" + res.Instance
	o.Labels = render.Labels(res.Instance)
	return o
}

func (o *Observer) computeCatalog(ctx context.Context, c *spec.Catalog, previous fs.FS, res *Result, sources map[string]*Source) (CatalogChange, error) {
	name := c.Metadata.Name
	src, err := o.ReadSource(ctx, c)
	if err != nil {
		return CatalogChange{}, err
	}
	sources[name] = src
	add, err := o.bundleAdder(ctx, c)
	if err != nil {
		return CatalogChange{}, err
	}
	rc, err := render.RenderCatalog(c, src.Config, add)
	if err != nil {
		return CatalogChange{}, err
	}
	configs, err := rc.ConfigFiles(ctx)
	if err != nil {
		return CatalogChange{}, fmt.Errorf("catalog %s: %w", name, err)
	}
	idx, base, err := o.Base(ctx, c, src)
	if err != nil {
		return CatalogChange{}, err
	}
	mfs := fstest.MapFS{}
	for p, data := range configs {
		mfs[p] = &fstest.MapFile{Data: data, Mode: 0o644}
		res.Files[path.Join(render.ConfigsDir(name), p)] = data
	}
	digest, img, err := BuildImage(idx, base, mfs)
	if err != nil {
		return CatalogChange{}, fmt.Errorf("catalog %s: build image: %w", name, err)
	}
	pinned, err := pin(c.Spec.Target, digest.String())
	if err != nil {
		return CatalogChange{}, fmt.Errorf("catalog %s: target: %w", name, err)
	}
	labels := render.Labels(res.Instance)
	if c.Spec.Serves(spec.ServeCatalogSource) {
		cs, err := render.CatalogSource(c, pinned, labels)
		if err != nil {
			return CatalogChange{}, err
		}
		res.Files[render.CatalogSourceFile(name)] = cs
	}
	if c.Spec.Serves(spec.ServeClusterCatalog) {
		cc, err := render.ClusterCatalog(c, pinned, labels)
		if err != nil {
			return CatalogChange{}, err
		}
		res.Files[render.ClusterCatalogFile(name)] = cc
	}
	res.Images = append(res.Images, BuiltImage{Catalog: name, Target: c.Spec.Target, Pinned: pinned, Digest: digest.String(), Image: img})
	res.Catalogs = append(res.Catalogs, rc)
	prev, prevImage := previousCatalog(ctx, previous, name)
	change := DiffCatalog(name, prev, rc.Config, prevImage, pinned)
	addInferredEdges(&change, rc.Edges)
	return change, nil
}

// pin turns a target repository[:tag] into repository@digest.
func pin(target, digest string) (string, error) {
	if target == "" {
		return "", errors.New("no target: define a Mirror or set spec.target")
	}
	repo, err := name.NewRepository(strings.Split(target, "@")[0], name.WeakValidation)
	if err == nil {
		return repo.Digest(digest).String(), nil
	}
	tag, terr := name.NewTag(target, name.StrictValidation)
	if terr != nil {
		return "", err
	}
	return tag.Context().Digest(digest).String(), nil
}

// previousCatalog loads a catalog's last render: its FBC and the image its
// CatalogSource pointed at.
func previousCatalog(ctx context.Context, previous fs.FS, catalog string) (*fbc.DeclarativeConfig, string) {
	if previous == nil {
		return nil, ""
	}
	sub, err := fs.Sub(previous, render.ConfigsDir(catalog))
	if err != nil {
		return nil, ""
	}
	if _, err := fs.Stat(sub, "."); err != nil {
		return nil, ""
	}
	cfg, err := fbc.LoadFS(ctx, sub)
	if err != nil {
		return nil, ""
	}
	var obj struct {
		Spec struct {
			Image  string `json:"image"`
			Source struct {
				Image struct {
					Ref string `json:"ref"`
				} `json:"image"`
			} `json:"source"`
		} `json:"spec"`
	}
	if b, err := fs.ReadFile(previous, render.CatalogSourceFile(catalog)); err == nil {
		_ = yaml.Unmarshal(b, &obj)
		return cfg, obj.Spec.Image
	}
	if b, err := fs.ReadFile(previous, render.ClusterCatalogFile(catalog)); err == nil {
		_ = yaml.Unmarshal(b, &obj)
	}
	return cfg, obj.Spec.Source.Image.Ref
}

// deletedCatalogs lists catalogs rendered before that the spec no longer has.
func deletedCatalogs(ctx context.Context, cfg *spec.Config, previous fs.FS) []CatalogChange {
	if previous == nil {
		return nil
	}
	entries, err := fs.ReadDir(previous, render.CatalogsDir)
	if err != nil {
		return nil
	}
	keep := map[string]bool{}
	for _, c := range cfg.Catalogs {
		keep[c.Metadata.Name] = true
	}
	var out []CatalogChange
	for _, e := range entries {
		if e.IsDir() && !keep[e.Name()] {
			prev, img := previousCatalog(ctx, previous, e.Name())
			out = append(out, DiffCatalog(e.Name(), prev, nil, img, ""))
		}
	}
	return out
}

// diffFiles compares the new render with the previous one, over the
// directories Ferry owns.
func diffFiles(previous fs.FS, next map[string][]byte) []FileChange {
	old := map[string][]byte{}
	if previous != nil {
		for _, root := range []string{render.CatalogsDir, path.Dir(mirror.MappingFile), mirror.LockFile, path.Dir(render.OperatorHubFile), render.SamplesDir} {
			_ = fs.WalkDir(previous, root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if b, err := fs.ReadFile(previous, p); err == nil {
						old[p] = b
					}
				}
				return nil
			})
		}
	}
	paths := map[string]bool{}
	for p := range old {
		paths[p] = true
	}
	for p := range next {
		paths[p] = true
	}
	var out []FileChange
	for _, p := range sortedKeys(paths) {
		b0, ok0 := old[p]
		b1, ok1 := next[p]
		a := Unchanged
		switch {
		case !ok0:
			a = Create
		case !ok1:
			a = Delete
		case !bytes.Equal(b0, b1):
			a = Update
		}
		out = append(out, FileChange{Path: p, Action: a})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
