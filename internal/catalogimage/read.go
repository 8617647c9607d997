package catalogimage

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Labels opm and OLM use to find a catalog inside an image.
const (
	LabelConfigs  = "operators.operatorframework.io.index.configs.v1"
	LabelDatabase = "operators.operatorframework.io.index.database.v1"
)

// Format says how an image stores its catalog.
type Format string

const (
	FormatFBC    Format = "fbc"
	FormatSQLite Format = "sqlite"
)

// Limits bound what reading an image may cost. Catalog images come from
// outside; a hostile or broken one must not exhaust memory, disk or time.
type Limits struct {
	// MaxFileBytes bounds one file of a file-based catalog. Parsing a file
	// holds it in memory (twice, while a document is assembled), so this
	// is what one catalog file may cost in memory. A SQLite database is
	// read page by page and is bounded by MaxTotalBytes alone.
	MaxFileBytes int64
	// MaxTotalBytes bounds everything kept, on disk.
	MaxTotalBytes int64
	// MaxFiles bounds the number of files kept.
	MaxFiles int
	// MaxBlobBytes bounds a layer's declared (compressed) size: what a
	// layer may put on disk while its digest is checked.
	MaxBlobBytes int64
	// MaxExpandBytes bounds the uncompressed bytes read from all layers of
	// one image, kept or not: a decompression bomb costs time even where
	// nothing is kept.
	MaxExpandBytes int64
	// MaxConfigBytes bounds an image's config, which is read into memory.
	MaxConfigBytes int64
}

// DefaultLimits fit the largest real catalogs (a few hundred MB of FBC in
// files of a few MB, databases of a few hundred MB, images of a few GB)
// with room to spare.
func DefaultLimits() Limits {
	return Limits{
		MaxFileBytes:   256 << 20,
		MaxTotalBytes:  2 << 30,
		MaxFiles:       500_000,
		MaxBlobBytes:   2 << 30,
		MaxExpandBytes: 16 << 30,
		MaxConfigBytes: 4 << 20,
	}
}

// withDefaults fills every unset limit from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set := func(v *int64, def int64) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.MaxFileBytes, d.MaxFileBytes)
	set(&l.MaxTotalBytes, d.MaxTotalBytes)
	set(&l.MaxBlobBytes, d.MaxBlobBytes)
	set(&l.MaxExpandBytes, d.MaxExpandBytes)
	set(&l.MaxConfigBytes, d.MaxConfigBytes)
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	return l
}

// Entry names longer or deeper than this are refused: a real catalog path
// is configs/<package>/<file>, and a deep path costs a directory per level.
const (
	maxNameBytes = 1024
	maxNameDepth = 32
)

// ReadOptions are the settings of Read and ReadDirs.
type ReadOptions struct {
	// Limits bound the cost; unset fields take DefaultLimits' values.
	Limits Limits
	// TempDir is where layers are checked and content is extracted; ""
	// is os.TempDir().
	TempDir string
	// Transfer runs a download, and again from the start when it broke
	// off in a way a new attempt can fix (registry.Client.Transfer); nil
	// runs it once.
	Transfer func(ctx context.Context, fn func(context.Context) error) error
	// Name is the image as errors name it, its reference; "" is "image".
	Name string
}

// DefaultReadOptions reads with DefaultLimits, once, into os.TempDir().
func DefaultReadOptions() ReadOptions { return ReadOptions{Limits: DefaultLimits()} }

func (o ReadOptions) transfer(ctx context.Context, fn func(context.Context) error) error {
	if o.Transfer == nil {
		return fn(ctx)
	}
	return o.Transfer(ctx, fn)
}

func (o ReadOptions) name() string {
	if o.Name == "" {
		return "image"
	}
	return o.Name
}

// Tree is content extracted from an image into a temporary directory on
// disk. A tree of any size is walked in time linear in its files, and its
// content costs no memory until it is read. Close removes it.
type Tree struct {
	// Root is the directory on disk.
	Root string
	// FS reads Root.
	FS fs.FS
}

// Close removes the tree from disk.
func (t *Tree) Close() error {
	if t == nil || t.Root == "" {
		return nil
	}
	return os.RemoveAll(t.Root)
}

// Contents is the catalog found in an image.
type Contents struct {
	Format Format
	// Dir is the in-image directory (FBC) or file (SQLite) the label names.
	Dir string
	// Tree holds the files under Dir (FBC), or the single file "index.db"
	// (SQLite); Close removes it.
	*Tree
	// CatalogLayers are the indexes, in img.Layers() order, of the top
	// layers that hold nothing but catalog content (the configs directory
	// or opm's cache). A rebuild on the same base drops them.
	CatalogLayers []int
}

// ErrNotCatalog is returned for an image without a catalog label.
var ErrNotCatalog = errors.New("not a catalog image: no " + LabelConfigs + " or " + LabelDatabase + " label")

// UnsafeEntryError reports a layer entry refused for safety.
type UnsafeEntryError struct {
	Layer  int
	Name   string
	Reason string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("layer %d: entry %q refused: %s", e.Layer, e.Name, e.Reason)
}

// Read extracts the catalog an image carries into a temporary directory.
// Every layer is checked against its digest before any of its content is
// used, and what the image may cost is bounded by opts.Limits. The caller
// closes the result.
func Read(ctx context.Context, img v1.Image, opts ReadOptions) (*Contents, error) {
	opts.Limits = opts.Limits.withDefaults()
	name := opts.name()
	if _, err := checkManifest(img, opts.Limits, name); err != nil {
		return nil, err
	}
	cf, err := configFile(ctx, img, opts, name)
	if err != nil {
		return nil, err
	}
	c := &Contents{}
	if dir := cf.Config.Labels[LabelConfigs]; dir != "" {
		c.Format, c.Dir = FormatFBC, dir
	} else if db := cf.Config.Labels[LabelDatabase]; db != "" {
		c.Format, c.Dir = FormatSQLite, db
	} else {
		return nil, fmt.Errorf("%s: %w", name, ErrNotCatalog)
	}
	target := cleanAbs(c.Dir)
	if target == "" {
		return nil, fmt.Errorf("%s: label names %q, which is not a usable path", name, c.Dir)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("%s: list layers: %w", name, err)
	}
	x, err := newExtractor(opts)
	if err != nil {
		return nil, err
	}
	defer x.close()
	x.target, x.single = target, c.Format == FormatSQLite
	catalogOnly := true
	for i := len(layers) - 1; i >= 0; i-- {
		only, err := x.layer(ctx, i, layers[i])
		if err != nil {
			x.tree.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if catalogOnly && only {
			c.CatalogLayers = append([]int{i}, c.CatalogLayers...)
		} else {
			catalogOnly = false
		}
	}
	switch {
	case c.Format == FormatSQLite && !x.files["index.db"]:
		x.tree.Close()
		return nil, fmt.Errorf("%s: label %s names %s, which the image does not contain", name, LabelDatabase, c.Dir)
	case c.Format == FormatFBC && len(x.files) == 0:
		x.tree.Close()
		return nil, fmt.Errorf("%s: label %s names %s, which holds no files", name, LabelConfigs, c.Dir)
	}
	c.Tree = x.tree
	return c, nil
}

// cleanAbs turns an in-image path into a clean relative one ("configs"),
// or "" when it is the root or not clean.
func cleanAbs(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return ""
	}
	return p[1:]
}

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// extractor applies layers top-down into a directory. A path seen in a
// higher layer wins; a whiteout or opaque marker hides lower layers only,
// so markers are collected per layer and take effect when the layer is
// done.
type extractor struct {
	target string
	single bool // target is a file (SQLite), not a directory
	// roots, when set, replaces target: keep every file under these
	// directories with its full path ("" keeps everything).
	roots  []string
	opts   ReadOptions
	tree   *Tree
	root   *os.Root
	files  map[string]bool // kept files
	dirs   map[string]bool // directories holding kept files
	hidden map[string]bool // deleted paths (and, with "/" suffix, opaque dirs)
	total  int64
	budget int64 // uncompressed bytes the remaining layers may expand to
}

func newExtractor(opts ReadOptions) (*extractor, error) {
	dir, err := os.MkdirTemp(opts.TempDir, "ferry-catalog-*")
	if err != nil {
		return nil, fmt.Errorf("extract catalog: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("extract catalog: %w", err)
	}
	return &extractor{
		opts:   opts,
		tree:   &Tree{Root: dir, FS: os.DirFS(dir)},
		root:   root,
		files:  map[string]bool{},
		dirs:   map[string]bool{},
		hidden: map[string]bool{},
		budget: opts.Limits.MaxExpandBytes,
	}, nil
}

// close releases the directory handle; the tree stays.
func (x *extractor) close() {
	if x.root != nil {
		x.root.Close()
		x.root = nil
	}
}

func (x *extractor) isHidden(name string) bool {
	for p := name; p != "."; p = path.Dir(p) {
		if x.hidden[p] || (p != name && x.hidden[p+"/"]) {
			return true
		}
	}
	return false
}

// shadowed reports whether a higher layer already decided rel: the same
// file, a directory there, or a file where rel has a parent directory.
func (x *extractor) shadowed(rel string) bool {
	if x.files[rel] || x.dirs[rel] {
		return true
	}
	for p := path.Dir(rel); p != "."; p = path.Dir(p) {
		if x.files[p] {
			return true
		}
	}
	return false
}

// relevant returns the path of name relative to the target, or false.
func (x *extractor) relevant(name string) (string, bool) {
	if x.roots != nil {
		for _, r := range x.roots {
			if r == "" || name == r || strings.HasPrefix(name, r+"/") {
				return name, true
			}
		}
		return "", false
	}
	if x.single {
		if name == x.target {
			return "index.db", true
		}
		return "", false
	}
	if rel, ok := strings.CutPrefix(name, x.target+"/"); ok {
		return rel, true
	}
	return "", false
}

// layer checks one layer against its digest, then reads it and reports
// whether it holds only catalog content (the target, opm's /tmp/cache, or
// whiteouts of them).
func (x *extractor) layer(ctx context.Context, i int, l v1.Layer) (bool, error) {
	what := fmt.Sprintf("layer %d", i)
	if d, err := l.Digest(); err == nil {
		what += " (" + d.String() + ")"
	}
	f, err := spool(ctx, l, x.opts, what)
	if err != nil {
		return false, err
	}
	defer f.Close()
	rc, err := expand(f, &x.budget, x.opts.Limits.MaxExpandBytes, what)
	if err != nil {
		return false, err
	}
	defer rc.close()
	only := true
	pending := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", what, err)
		}
		raw := h.Name
		name := path.Clean(strings.TrimPrefix(raw, "/"))
		if strings.HasPrefix(strings.TrimPrefix(raw, "./"), "../") || name == ".." || strings.HasPrefix(name, "../") {
			return false, &UnsafeEntryError{Layer: i, Name: raw, Reason: "path leaves the image root"}
		}
		if name == "." {
			continue
		}
		dir, base := path.Dir(name), path.Base(name)
		if !x.underCatalog(name) {
			only = false
		}
		switch {
		case base == opaqueWhiteout:
			pending[dir+"/"] = true
			continue
		case strings.HasPrefix(base, whiteoutPrefix):
			pending[path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))] = true
			continue
		}
		rel, ok := x.relevant(name)
		if !ok || x.isHidden(name) || x.shadowed(rel) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeReg:
		case tar.TypeDir:
			continue
		case tar.TypeSymlink, tar.TypeLink:
			// opm reads configs through the real filesystem, where a link
			// could point anywhere; Ferry does not follow them.
			return false, &UnsafeEntryError{Layer: i, Name: raw, Reason: "links are not allowed in catalog content"}
		default:
			continue
		}
		if err := x.check(i, raw, rel, h.Size); err != nil {
			return false, err
		}
		if err := x.write(rel, tr, h.Size); err != nil {
			return false, fmt.Errorf("%s: extract %s: %w", what, raw, err)
		}
	}
	for p := range pending {
		x.hidden[p] = true
	}
	return only, nil
}

// check refuses an entry over the limits, before any of it is written.
func (x *extractor) check(i int, raw, rel string, size int64) error {
	lim := x.opts.Limits
	switch {
	case len(rel) > maxNameBytes || strings.Count(rel, "/") >= maxNameDepth:
		return &UnsafeEntryError{Layer: i, Name: raw, Reason: fmt.Sprintf("path longer than %d bytes or deeper than %d directories", maxNameBytes, maxNameDepth)}
	case !x.single && size > lim.MaxFileBytes:
		return &UnsafeEntryError{Layer: i, Name: raw, Reason: fmt.Sprintf("%d bytes exceeds the %d-byte file limit", size, lim.MaxFileBytes)}
	case x.total+size > lim.MaxTotalBytes:
		return &UnsafeEntryError{Layer: i, Name: raw, Reason: fmt.Sprintf("catalog content exceeds %d bytes", lim.MaxTotalBytes)}
	case len(x.files) >= lim.MaxFiles:
		return &UnsafeEntryError{Layer: i, Name: raw, Reason: fmt.Sprintf("catalog has more than %d files", lim.MaxFiles)}
	}
	return nil
}

// write puts one file under the tree's root. os.Root keeps every path
// inside it, whatever the name; links are never created, so none can be
// followed.
func (x *extractor) write(rel string, r io.Reader, size int64) error {
	if d := path.Dir(rel); d != "." && !x.dirs[d] {
		if err := x.root.MkdirAll(filepath.FromSlash(d), 0o755); err != nil {
			return err
		}
	}
	f, err := x.root.OpenFile(filepath.FromSlash(rel), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	x.total += size
	x.files[rel] = true
	for p := path.Dir(rel); p != "."; p = path.Dir(p) {
		x.dirs[p] = true
	}
	return nil
}

// underCatalog reports whether an entry is catalog content: the target or
// opm's cache directory.
func (x *extractor) underCatalog(name string) bool {
	for _, root := range []string{x.target, "tmp/cache"} {
		if name == root || strings.HasPrefix(name, root+"/") || name == path.Join(path.Dir(root), whiteoutPrefix+path.Base(root)) {
			return true
		}
	}
	return false
}

// ReadDirs extracts the files under the given in-image directories (full
// paths, without the leading "/") into a temporary directory, with
// whiteouts applied, every layer checked against its digest and the same
// limits as Read. Bundle images are read this way: manifests/ and
// metadata/. The caller closes the result.
func ReadDirs(ctx context.Context, img v1.Image, opts ReadOptions, dirs ...string) (*Tree, error) {
	opts.Limits = opts.Limits.withDefaults()
	name := opts.name()
	roots := make([]string, 0, len(dirs))
	for _, d := range dirs {
		roots = append(roots, cleanAbs(d))
	}
	if _, err := checkManifest(img, opts.Limits, name); err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("%s: list layers: %w", name, err)
	}
	x, err := newExtractor(opts)
	if err != nil {
		return nil, err
	}
	x.roots = roots
	defer x.close()
	for i := len(layers) - 1; i >= 0; i-- {
		if _, err := x.layer(ctx, i, layers[i]); err != nil {
			x.tree.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return x.tree, nil
}
