package catalogimage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ConfigsDir is where built images keep their catalog, as opm's generated
// Dockerfile does.
const ConfigsDir = "/configs"

// CacheDir is where opm serve keeps its cache in the built image. It is
// whited out so no cache built for other content survives.
const CacheDir = "/tmp/cache"

// ServeCommand is the built image's command. opm enforces cache integrity
// by default whenever --cache-dir is set, and then exits when the cache is
// missing; the cache is whited out (a stale one would fail the same check
// after any configs change), so integrity enforcement is turned off and opm
// builds the cache when the pod starts.
func ServeCommand() []string {
	return []string{"serve", ConfigsDir, "--cache-dir=" + CacheDir, "--cache-enforce-integrity=false"}
}

// BuildOptions tunes Build.
type BuildOptions struct {
	// KeepCatalogLayers keeps the base's top layers that hold only catalog
	// content. By default they are dropped: the new /configs replaces them,
	// and copying them would only cost bytes.
	KeepCatalogLayers bool
	// Read says how the base's config and top layers are read (limits,
	// retries); unset limits take DefaultLimits' values.
	Read ReadOptions
}

func (o BuildOptions) withDefaults() BuildOptions {
	o.Read.Limits = o.Read.Limits.withDefaults()
	return o
}

// Build returns base plus one layer holding configs (an FBC directory tree)
// under /configs, with the labels and command opm serves it with. The layer
// is byte-identical for identical configs.
//
// The base is untrusted like any image: its declared config size is
// checked before the config is read, and the top layers inspected to drop
// old catalog content are checked against their digests before use.
func Build(ctx context.Context, base v1.Image, configs fs.FS, opts BuildOptions) (v1.Image, error) {
	opts = opts.withDefaults()
	name := "base " + opts.Read.name()
	if _, err := checkManifest(base, opts.Read.Limits, name); err != nil {
		return nil, err
	}
	if _, err := configFile(ctx, base, opts.Read, name); err != nil {
		return nil, err
	}
	layer, err := configsLayer(configs, base)
	if err != nil {
		return nil, err
	}
	if !opts.KeepCatalogLayers {
		if base, err = dropCatalogLayers(ctx, base, opts.Read); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:   layer,
		History: v1.History{CreatedBy: "ferry: catalog configs at " + ConfigsDir, Comment: "FBC rendered by Ferry"},
	})
	if err != nil {
		return nil, fmt.Errorf("append configs layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read base config: %w", err)
	}
	cf = cf.DeepCopy()
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels[LabelConfigs] = ConfigsDir
	// A base that was a SQLite index must not also claim to be one.
	delete(cf.Config.Labels, LabelDatabase)
	cf.Config.Entrypoint = []string{"/bin/opm"}
	cf.Config.Cmd = ServeCommand()
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set catalog config: %w", err)
	}
	return img, nil
}

// BuildIndex builds one catalog image per child of a multi-arch base and
// joins them in an index with the same platforms.
func BuildIndex(ctx context.Context, base v1.ImageIndex, configs fs.FS, opts BuildOptions) (v1.ImageIndex, error) {
	im, err := base.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read base index: %w", err)
	}
	var adds []mutate.IndexAddendum
	for _, d := range im.Manifests {
		if !d.MediaType.IsImage() {
			continue // attestations and nested indexes are not runnable bases
		}
		child, err := base.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", d.Digest, err)
		}
		img, err := Build(ctx, child, configs, opts)
		if err != nil {
			return nil, fmt.Errorf("platform %s: %w", platformString(d.Platform), err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: d.Platform}})
	}
	if len(adds) == 0 {
		return nil, errors.New("base index has no images")
	}
	idx := mutate.IndexMediaType(empty.Index, im.MediaType)
	return mutate.AppendManifests(idx, adds...), nil
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return "unknown"
	}
	return p.String()
}

// dropCatalogLayers removes the base's top layers that hold only catalog
// content.
func dropCatalogLayers(ctx context.Context, base v1.Image, opts ReadOptions) (v1.Image, error) {
	layers, err := base.Layers()
	if err != nil {
		return nil, fmt.Errorf("list base layers: %w", err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, err
	}
	target := cleanAbs(cf.Config.Labels[LabelConfigs])
	if target == "" {
		target = cleanAbs(ConfigsDir)
	}
	x := &extractor{target: target, opts: opts, budget: opts.Limits.MaxExpandBytes}
	keep := len(layers)
	for keep > 1 {
		only, err := x.onlyCatalog(ctx, keep-1, layers[keep-1])
		if err != nil {
			return nil, err
		}
		if !only {
			break
		}
		keep--
	}
	if keep == len(layers) {
		return base, nil
	}
	return rebase(base, layers[:keep])
}

// rebase rebuilds base's manifest and config with only the given lower
// layers, keeping the history entries that belong to them.
func rebase(base v1.Image, layers []v1.Layer) (v1.Image, error) {
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, err
	}
	mt, err := base.MediaType()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	var hist []v1.History
	n := 0
	for _, h := range cf.History {
		if !h.EmptyLayer {
			if n == len(layers) {
				break
			}
			n++
		}
		hist = append(hist, h)
	}
	cf.History = hist
	cf.RootFS.DiffIDs = nil
	img := mutate.MediaType(empty.Image, mt)
	if mt == types.OCIManifestSchema1 {
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	diffs, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf.RootFS = diffs.RootFS
	return mutate.ConfigFile(img, cf)
}

// onlyCatalog reports whether a layer holds nothing but catalog content.
// The answer decides what the built image keeps, so the layer is checked
// against its digest first, like any layer read.
func (x *extractor) onlyCatalog(ctx context.Context, i int, l v1.Layer) (bool, error) {
	what := fmt.Sprintf("layer %d", i)
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
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", what, err)
		}
		name := path.Clean(h.Name)
		if name == "." || name == "tmp" || name == path.Dir(x.target) {
			continue // parent directories come along with any content
		}
		if !x.underCatalog(name) {
			return false, nil
		}
	}
}

// configsLayer makes the /configs layer: an opaque whiteout hiding the
// base's configs, a whiteout of opm's cache, then every file of configs in
// sorted order with fixed metadata, so equal content gives an equal digest.
func configsLayer(configs fs.FS, base v1.Image) (v1.Layer, error) {
	var files []string
	err := fs.WalkDir(configs, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		} else if !d.IsDir() {
			return fmt.Errorf("%s: only regular files can go into a catalog image", p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read configs: %w", err)
	}
	if len(files) == 0 {
		return nil, errors.New("configs are empty")
	}
	sort.Strings(files)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	root := cleanAbs(ConfigsDir)
	dirs := map[string]bool{}
	writeDir := func(name string, mode int64) error {
		if dirs[name] {
			return nil
		}
		dirs[name] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Format: tar.FormatPAX})
	}
	writeFile := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := writeDir("tmp", 0o1777); err != nil {
		return nil, err
	}
	if err := writeFile("tmp/"+whiteoutPrefix+path.Base(CacheDir), nil); err != nil {
		return nil, err
	}
	if err := writeDir(root, 0o755); err != nil {
		return nil, err
	}
	if err := writeFile(root+"/"+opaqueWhiteout, nil); err != nil {
		return nil, err
	}
	for _, f := range files {
		var parents []string
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if err := writeDir(root+"/"+d, 0o755); err != nil {
				return nil, err
			}
		}
		data, err := fs.ReadFile(configs, f)
		if err != nil {
			return nil, err
		}
		if err := writeFile(root+"/"+f, data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerType := types.DockerLayer
	if mt, err := base.MediaType(); err == nil && mt == types.OCIManifestSchema1 {
		layerType = types.OCILayer
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(layerType))
}
