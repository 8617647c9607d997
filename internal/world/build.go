package world

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// catalogKind is the format of the catalog image a build pushes.
type catalogKind int

const (
	kindFBC catalogKind = iota
	kindSQLite
)

// Build populates opts.Registry from the file-based catalog in fsys (the
// directory holding one sub-directory per package, as under /configs) and
// pushes the rewritten catalog as an FBC catalog image.
func Build(ctx context.Context, fsys fs.FS, opts Options) (*World, error) {
	return build(ctx, fsys, opts, kindFBC)
}

// BuildSQLiteIndex is Build with the catalog served as a SQLite index image
// (/database/index.db), the format catalogs had before OpenShift 4.11, so
// Ferry's handling of legacy sources can be tested with `opm render` as the
// judge. Package descriptions, olm.deprecations and schemas other than
// package/channel/bundle have no SQLite representation and are not in the
// index (World.Configs still has them); bundles list their own image among
// their related images, as indexes built by `opm index add` do.
func BuildSQLiteIndex(ctx context.Context, fsys fs.FS, opts Options) (*World, error) {
	return build(ctx, fsys, opts, kindSQLite)
}

// plannedImage is one synthetic image: every catalog spelling that resolves
// to the same canonical reference shares it.
type plannedImage struct {
	key     string
	src     sourceRef
	repo    string
	pushTag bool   // this image owns src.Tag in repo
	bundle  string // "package/bundle" for bundle images
	ref     string // rewritten reference, set once pushed
}

func build(ctx context.Context, fsys fs.FS, opts Options, kind catalogKind) (*World, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	phase := func(msg string, args ...any) {
		opts.Log.Info(msg, append(args, "elapsed", time.Since(start).Round(time.Millisecond))...)
	}
	docs, err := loadFBC(fsys)
	if err != nil {
		return nil, err
	}
	idx, err := indexFBC(docs)
	if err != nil {
		return nil, err
	}
	b, err := newBuilder(opts)
	if err != nil {
		return nil, err
	}

	planned, bySpelling, err := planImages(idx, opts)
	if err != nil {
		return nil, err
	}
	phase("catalog loaded", "documents", len(docs), "images", len(planned))
	var plain, bundles []*plannedImage
	for _, p := range planned {
		if p.bundle != "" {
			bundles = append(bundles, p)
		} else {
			plain = append(plain, p)
		}
	}
	rewrite := func(s string) (string, bool) {
		p := bySpelling[s]
		if p == nil || p.ref == "" {
			return "", false
		}
		return p.ref, true
	}

	// Related images first: bundle manifests name them.
	err = forEach(ctx, opts.Concurrency, plain, func(ctx context.Context, p *plannedImage) error {
		t, err := b.syntheticImage(p)
		if err != nil {
			return err
		}
		return b.push(ctx, p, t)
	})
	if err != nil {
		return nil, err
	}

	phase("related images pushed", "count", len(plain))
	contents := map[string]*bundleContent{}
	for _, pn := range sortedKeys(idx.packages) {
		pk := idx.packages[pn]
		for _, bn := range sortedKeys(pk.bundles) {
			c, err := newBundleContent(pk, pk.bundles[bn], rewrite)
			if err != nil {
				return nil, err
			}
			contents[pn+"/"+bn] = c
		}
	}
	err = forEach(ctx, opts.Concurrency, bundles, func(ctx context.Context, p *plannedImage) error {
		img, err := newBundleImage(contents[p.bundle], b.flavourOf(p.key))
		if err != nil {
			return err
		}
		return b.push(ctx, p, img)
	})
	if err != nil {
		return nil, err
	}

	phase("bundle images pushed", "count", len(bundles))
	if err := rewriteDocs(docs, rewrite); err != nil {
		return nil, err
	}
	for _, c := range contents {
		if r, ok := rewrite(c.image); ok {
			c.image = r
		}
	}
	files, err := writeFBC(docs, opts.CatalogFormat)
	if err != nil {
		return nil, err
	}

	var catalog partial.Describable
	switch kind {
	case kindSQLite:
		db, err := buildIndexDB(ctx, idx, contents)
		if err != nil {
			return nil, err
		}
		catalog, err = b.catalogImage([]file{{Name: "database/index.db", Data: db}}, sqliteCatalogConfig())
		if err != nil {
			return nil, err
		}
	default:
		var cfgFiles []file
		for _, k := range sortedKeys(files) {
			cfgFiles = append(cfgFiles, file{Name: "configs/" + k, Data: files[k]})
		}
		catalog, err = b.catalogImage(cfgFiles, fbcCatalogConfig())
		if err != nil {
			return nil, err
		}
	}
	catRepo := targetRepoPath(opts.Registry, opts.Prefix, opts.CatalogRepository)
	tagRef, err := name.NewTag(catRepo+":"+opts.CatalogTag, b.nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("catalog reference: %w", err)
	}
	if err := b.pushTaggable(ctx, tagRef, catalog.(remote.Taggable)); err != nil {
		return nil, fmt.Errorf("push catalog %s: %w", tagRef, err)
	}
	dgst, err := catalog.Digest()
	if err != nil {
		return nil, err
	}

	phase("catalog pushed", "ref", tagRef.String(), "digest", dgst.String())
	w := &World{
		Catalog:    catRepo + "@" + dgst.String(),
		CatalogTag: tagRef.String(),
		Rewritten:  map[string]string{},
		Configs:    mapFS(files),
	}
	seen := map[string]bool{}
	for s, p := range bySpelling {
		w.Rewritten[s] = p.ref
		if !seen[p.ref] {
			seen[p.ref] = true
			w.Images = append(w.Images, p.ref)
		}
	}
	sort.Strings(w.Images)
	w.Stats = b.stats()
	return w, nil
}

// planImages assigns every image reference of the catalog to a planned
// image. Bundle images are planned first so that a reference used both as a
// bundle image and as some bundle's related image is built as a bundle.
func planImages(idx *packageIndex, opts Options) ([]*plannedImage, map[string]*plannedImage, error) {
	byKey := map[string]*plannedImage{}
	bySpelling := map[string]*plannedImage{}
	var order []*plannedImage
	var errs []error
	add := func(spelling, bundle string) {
		if spelling == "" {
			return
		}
		if p, ok := bySpelling[spelling]; ok {
			if bundle != "" && p.bundle == "" {
				p.bundle = bundle
			}
			return
		}
		src, err := parseSourceRef(spelling)
		if err != nil {
			errs = append(errs, err)
			return
		}
		p := byKey[src.key()]
		if p == nil {
			p = &plannedImage{key: src.key(), src: src, repo: targetRepo(opts.Registry, opts.Prefix, src)}
			byKey[p.key] = p
			order = append(order, p)
		}
		if bundle != "" && p.bundle == "" {
			p.bundle = bundle
		}
		bySpelling[spelling] = p
	}
	for _, pn := range sortedKeys(idx.packages) {
		pk := idx.packages[pn]
		for _, bn := range sortedKeys(pk.bundles) {
			add(pk.bundles[bn].str("image"), pn+"/"+bn)
		}
	}
	for _, pn := range sortedKeys(idx.packages) {
		pk := idx.packages[pn]
		for _, bn := range sortedKeys(pk.bundles) {
			for _, ri := range relatedImages(pk.bundles[bn]) {
				add(ri.Image, "")
			}
		}
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("catalog image references: %w", errors.Join(errs...))
	}

	// A tag names one image. When several references claim the same
	// repository and tag (a tag-only reference and tag@digest references of
	// other builds), the tag-only one gets it, else the first by key, so the
	// tag's target does not depend on push order.
	owners := map[string]*plannedImage{}
	for _, p := range order {
		if p.src.Tag == "" {
			continue
		}
		k := p.repo + ":" + p.src.Tag
		o := owners[k]
		switch {
		case o == nil:
			owners[k] = p
		case (p.src.Digest == "") != (o.src.Digest == ""):
			if p.src.Digest == "" {
				owners[k] = p
			}
		case p.key < o.key:
			owners[k] = p
		}
	}
	for _, o := range owners {
		o.pushTag = true
	}
	sort.Slice(order, func(i, j int) bool { return order[i].key < order[j].key })
	return order, bySpelling, nil
}

// rewriteDocs points every bundle's image, relatedImages and embedded
// olm.bundle.object manifests at the pushed images.
func rewriteDocs(docs []doc, rewrite func(string) (string, bool)) error {
	for _, d := range docs {
		if d.schema() != schemaBundle {
			continue
		}
		if r, ok := rewrite(d.str("image")); ok {
			d.obj["image"] = r
		}
		ris, _ := d.obj["relatedImages"].([]any)
		for _, ri := range ris {
			m, _ := ri.(map[string]any)
			if img, _ := m["image"].(string); img != "" {
				if r, ok := rewrite(img); ok {
					m["image"] = r
				}
			}
		}
		props, _ := d.obj["properties"].([]any)
		for _, p := range props {
			pm, _ := p.(map[string]any)
			if pm["type"] != propBundleObject {
				continue
			}
			v, _ := pm["value"].(map[string]any)
			data, _ := v["data"].(string)
			o, err := decodeObject(data)
			if err != nil {
				return fmt.Errorf("%s: bundle %s: olm.bundle.object: %w", d.file, d.str("name"), err)
			}
			if _, changed := rewriteStrings(o, rewrite); changed {
				j, err := marshalJSON(o)
				if err != nil {
					return err
				}
				v["data"] = base64.StdEncoding.EncodeToString(j)
			}
		}
	}
	return nil
}

// forEach runs f over items with at most n in flight, stopping at the first
// error.
func forEach[T any](ctx context.Context, n int, items []T, f func(context.Context, T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, n)
	)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(ctx, it); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

func targetRepoPath(registry, prefix, repo string) string {
	parts := []string{registry}
	if p := strings.Trim(prefix, "/"); p != "" {
		parts = append(parts, p)
	}
	return strings.Join(append(parts, strings.Trim(repo, "/")), "/")
}

// mapFS exposes the rewritten catalog files as an fs.FS.
func mapFS(files map[string][]byte) fs.FS {
	m := fstest.MapFS{}
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: v, Mode: 0o644}
	}
	return m
}
