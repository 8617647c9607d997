package catalogimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"testing/fstest"
	"time"

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
// outside; a hostile or broken one must not exhaust memory.
type Limits struct {
	MaxFileBytes  int64 // one file
	MaxTotalBytes int64 // everything kept
	MaxFiles      int
}

// DefaultLimits fit the largest real catalogs (a few hundred MB of FBC)
// with room to spare.
func DefaultLimits() Limits {
	return Limits{MaxFileBytes: 512 << 20, MaxTotalBytes: 2 << 30, MaxFiles: 200000}
}

// Contents is the catalog found in an image.
type Contents struct {
	Format Format
	// Dir is the in-image directory (FBC) or file (SQLite) the label names.
	Dir string
	// FS holds the files under Dir (FBC), or the single file "index.db"
	// (SQLite).
	FS fs.FS
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

// Read extracts the catalog an image carries.
func Read(img v1.Image, limits Limits) (*Contents, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	c := &Contents{}
	if dir := cf.Config.Labels[LabelConfigs]; dir != "" {
		c.Format, c.Dir = FormatFBC, dir
	} else if db := cf.Config.Labels[LabelDatabase]; db != "" {
		c.Format, c.Dir = FormatSQLite, db
	} else {
		return nil, ErrNotCatalog
	}
	target := cleanAbs(c.Dir)
	if target == "" {
		return nil, fmt.Errorf("label names %q, which is not a usable path", c.Dir)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	x := &extractor{target: target, single: c.Format == FormatSQLite, limits: limits, files: fstest.MapFS{}, hidden: map[string]bool{}}
	catalogOnly := true
	for i := len(layers) - 1; i >= 0; i-- {
		only, err := x.layer(i, layers[i])
		if err != nil {
			return nil, err
		}
		if catalogOnly && only {
			c.CatalogLayers = append([]int{i}, c.CatalogLayers...)
		} else {
			catalogOnly = false
		}
	}
	if c.Format == FormatSQLite {
		if _, ok := x.files["index.db"]; !ok {
			return nil, fmt.Errorf("label %s names %s, which the image does not contain", LabelDatabase, c.Dir)
		}
	} else if len(x.files) == 0 {
		return nil, fmt.Errorf("label %s names %s, which holds no files", LabelConfigs, c.Dir)
	}
	c.FS = x.files
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

// extractor applies layers top-down. A path seen in a higher layer wins; a
// whiteout or opaque marker hides lower layers only, so markers are
// collected per layer and take effect when the layer is done.
type extractor struct {
	target string
	single bool // target is a file (SQLite), not a directory
	// roots, when set, replaces target: keep every file under these
	// directories with its full path ("" keeps everything).
	roots  []string
	limits Limits
	files  fstest.MapFS
	hidden map[string]bool // deleted paths (and, with "/" suffix, opaque dirs)
	total  int64
}

func (x *extractor) isHidden(name string) bool {
	for p := name; p != "."; p = path.Dir(p) {
		if x.hidden[p] || (p != name && x.hidden[p+"/"]) {
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

// layer reads one layer and reports whether it holds only catalog content
// (the target, opm's /tmp/cache, or whiteouts of them).
func (x *extractor) layer(i int, l v1.Layer) (bool, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return false, fmt.Errorf("layer %d: %w", i, err)
	}
	defer rc.Close()
	only := true
	pending := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("layer %d: %w", i, err)
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
		if !ok || x.isHidden(name) {
			continue
		}
		if _, seen := x.files[rel]; seen {
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
		if h.Size > x.limits.MaxFileBytes {
			return false, &UnsafeEntryError{Layer: i, Name: raw, Reason: fmt.Sprintf("%d bytes exceeds the %d-byte file limit", h.Size, x.limits.MaxFileBytes)}
		}
		if x.total+h.Size > x.limits.MaxTotalBytes {
			return false, &UnsafeEntryError{Layer: i, Name: raw, Reason: fmt.Sprintf("catalog content exceeds %d bytes", x.limits.MaxTotalBytes)}
		}
		if len(x.files) >= x.limits.MaxFiles {
			return false, &UnsafeEntryError{Layer: i, Name: raw, Reason: fmt.Sprintf("catalog has more than %d files", x.limits.MaxFiles)}
		}
		data, err := io.ReadAll(io.LimitReader(tr, h.Size))
		if err != nil {
			return false, fmt.Errorf("layer %d: read %s: %w", i, raw, err)
		}
		x.total += int64(len(data))
		x.files[rel] = &fstest.MapFile{Data: data, Mode: 0o644, ModTime: time.Time{}}
	}
	for p := range pending {
		x.hidden[p] = true
	}
	return only, nil
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

// ReadDirs returns the files under the given in-image directories (full
// paths, without the leading "/"), with whiteouts applied and the same
// safety limits as Read. Bundle images are read this way: manifests/ and
// metadata/.
func ReadDirs(img v1.Image, limits Limits, dirs ...string) (fs.FS, error) {
	roots := make([]string, 0, len(dirs))
	for _, d := range dirs {
		roots = append(roots, cleanAbs(d))
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	x := &extractor{roots: roots, limits: limits, files: fstest.MapFS{}, hidden: map[string]bool{}}
	for i := len(layers) - 1; i >= 0; i-- {
		if _, err := x.layer(i, layers[i]); err != nil {
			return nil, err
		}
	}
	return x.files, nil
}
