package fbc

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	sigsyaml "sigs.k8s.io/yaml"
)

// Format is how a catalog is written.
type Format string

const (
	// FormatYAML writes "---"-separated YAML documents, byte for byte what
	// `opm render -o yaml` writes for the same blobs.
	FormatYAML Format = "yaml"
	// FormatJSON writes a stream of indented JSON objects, byte for byte
	// what `opm render -o json` writes for the same blobs.
	FormatJSON Format = "json"
)

// ext is the file extension WriteFS uses.
func (f Format) ext() string { return "." + string(f) }

// WriteOptions are the per-call settings of WriteFS and WriteDir.
type WriteOptions struct {
	// Format of the files; empty means FormatYAML.
	Format Format
}

// DefaultWriteOptions writes YAML, the format reviewed in git.
func DefaultWriteOptions() WriteOptions { return WriteOptions{Format: FormatYAML} }

// FileWriter is where WriteFS puts a catalog's files. WriteFile creates the
// file name (a slash-separated path relative to the catalog root, parent
// directories created as needed), lets write fill it, and keeps it only if
// write succeeds. WriteFS calls it from several goroutines at once.
type FileWriter interface {
	WriteFile(name string, write func(io.Writer) error) error
}

// WriteYAML writes cfg as one YAML stream in the catalog order (see
// WriteFS), like `opm render -o yaml`.
func WriteYAML(w io.Writer, cfg *DeclarativeConfig) error {
	return writeStream(w, cfg, FormatYAML)
}

// WriteJSON writes cfg as one stream of JSON objects in the catalog order
// (see WriteFS), like `opm render -o json`.
func WriteJSON(w io.Writer, cfg *DeclarativeConfig) error {
	return writeStream(w, cfg, FormatJSON)
}

// WriteFS writes cfg as one file per package, <package>/catalog.<format>,
// plus catalog.<format> at the root for blobs of other schemas that belong
// to no package. Within a file blobs come in opm's order: the olm.package
// blob, channels by name, bundles by name, blobs of other schemas by schema,
// then the package's olm.deprecations; packages are visited by name. The
// output depends only on cfg, never on timing, and cfg is not modified.
func WriteFS(ctx context.Context, fw FileWriter, cfg *DeclarativeConfig, opts WriteOptions) error {
	_, err := writeFiles(ctx, fw, cfg, opts)
	return err
}

func writeFiles(ctx context.Context, fw FileWriter, cfg *DeclarativeConfig, opts WriteOptions) ([]string, error) {
	format := opts.Format
	if format == "" {
		format = FormatYAML
	}
	if format != FormatYAML && format != FormatJSON {
		return nil, fmt.Errorf("write catalog: unknown format %q", format)
	}
	groups, err := groupByPackage(cfg)
	if err != nil {
		return nil, fmt.Errorf("write catalog: %w", err)
	}
	file := "catalog" + format.ext()
	names := make([]string, len(groups))
	for i, g := range groups {
		if g.name == "" {
			names[i] = file
		} else {
			names[i] = g.name + "/" + file
		}
	}
	// Each worker streams a package's blobs into its file one at a time, so
	// memory holds the catalog plus one blob per worker, not whole files.
	// The biggest packages go first so that no worker ends with one alone.
	sizes := make([]int64, len(groups))
	for i, g := range groups {
		sizes[i] = g.size()
	}
	order := largestFirst(sizes)
	err = parallel(ctx, len(groups), func(enc *blobEncoder, k int) error {
		i := order[k]
		err := fw.WriteFile(names[i], func(w io.Writer) error {
			return enc.group(groups[i], format, w)
		})
		if err != nil {
			return fmt.Errorf("write catalog: %s: %w", names[i], err)
		}
		return nil
	})
	return names, err
}

// parallel runs fn for 0..n-1 on GOMAXPROCS goroutines, each with its own
// encoder, and returns the first error (by index).
func parallel(ctx context.Context, n int, fn func(enc *blobEncoder, i int) error) error {
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := getScratch()
			defer putScratch(sc)
			var enc blobEncoder
			enc.use(sc)
			defer enc.keep(sc)
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := ctx.Err(); err != nil {
					errs[i] = err
					return
				}
				errs[i] = fn(&enc, i)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// WriteDir writes cfg under dir with WriteFS, creating dir if needed. Files
// named catalog.json, catalog.yaml or catalog.yml that the previous contents
// of dir had at the root or one level down, and that this write did not
// produce, are removed (with their directory, when it is left empty), so that
// rewriting a filtered catalog drops the packages it no longer has. Other
// files are left alone.
func WriteDir(ctx context.Context, dir string, cfg *DeclarativeConfig, opts WriteOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write catalog: %w", err)
	}
	written, err := writeFiles(ctx, DirWriter(dir), cfg, opts)
	if err != nil {
		return err
	}
	return pruneStale(dir, written)
}

func pruneStale(dir string, written []string) error {
	keep := make(map[string]bool, len(written))
	for _, w := range written {
		keep[w] = true
	}
	var stale []string
	for _, pattern := range []string{"catalog.*", "*/catalog.*"} {
		m, err := fs.Glob(os.DirFS(dir), pattern)
		if err != nil {
			return err
		}
		for _, name := range m {
			switch path.Ext(name) {
			case ".json", ".yaml", ".yml":
				if !keep[name] {
					stale = append(stale, name)
				}
			}
		}
	}
	for _, name := range stale {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("write catalog: remove stale file: %w", err)
		}
		if d := path.Dir(name); d != "." {
			pd := filepath.Join(dir, filepath.FromSlash(d))
			if entries, err := os.ReadDir(pd); err == nil && len(entries) == 0 {
				if err := os.Remove(pd); err != nil {
					return fmt.Errorf("write catalog: remove stale directory: %w", err)
				}
			}
		}
	}
	return nil
}

// DirWriter is a FileWriter on the local file system rooted at a directory.
// Each file is written to a temporary name and renamed into place.
type DirWriter string

var _ FileWriter = DirWriter("")

// WriteFile implements FileWriter.
func (d DirWriter) WriteFile(name string, write func(io.Writer) error) error {
	if !fs.ValidPath(name) {
		return fmt.Errorf("invalid file name %q", name)
	}
	p := filepath.Join(string(d), filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p)+"-*")
	if err != nil {
		return err
	}
	err = write(f) // WriteFS writes in large chunks; no buffering needed
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// MapWriter is an in-memory FileWriter, for tests and for callers that
// post-process the files.
type MapWriter struct {
	mu    sync.Mutex
	Files map[string][]byte
}

var _ FileWriter = (*MapWriter)(nil)

// WriteFile implements FileWriter.
func (m *MapWriter) WriteFile(name string, write func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Files == nil {
		m.Files = map[string][]byte{}
	}
	m.Files[name] = buf.Bytes()
	return nil
}

// size estimates the group's encoded size from its raw values.
func (g *pkgGroup) size() int64 {
	var n int64
	for _, b := range g.bundles {
		n += 256
		for _, p := range b.Properties {
			n += int64(len(p.Value))
		}
	}
	for _, p := range g.packages {
		if p.Icon != nil {
			n += int64(len(p.Icon.Data))
		}
	}
	for _, c := range g.channels {
		n += 64 * int64(len(c.Entries))
	}
	for _, o := range g.others {
		n += int64(len(o.Blob))
	}
	return n
}

// pkgGroup is one package's blobs in write order; name is "" for the
// root-level group of package-less Others.
type pkgGroup struct {
	name         string
	packages     []*Package
	channels     []*Channel
	bundles      []*Bundle
	others       []*Meta
	deprecations []*Deprecation
}

func groupByPackage(cfg *DeclarativeConfig) ([]*pkgGroup, error) {
	byName := map[string]*pkgGroup{}
	get := func(name, what string) (*pkgGroup, error) {
		if name == "" {
			return nil, fmt.Errorf("%s has no package name", what)
		}
		if !fs.ValidPath(name) || strings.Contains(name, "/") || name == "." {
			return nil, fmt.Errorf("invalid package name %q: must be a single path element", name)
		}
		g := byName[name]
		if g == nil {
			g = &pkgGroup{name: name}
			byName[name] = g
		}
		return g, nil
	}
	for i := range cfg.Packages {
		g, err := get(cfg.Packages[i].Name, "an olm.package blob")
		if err != nil {
			return nil, err
		}
		g.packages = append(g.packages, &cfg.Packages[i])
	}
	for i := range cfg.Channels {
		c := &cfg.Channels[i]
		g, err := get(c.Package, fmt.Sprintf("channel %q", c.Name))
		if err != nil {
			return nil, err
		}
		g.channels = append(g.channels, c)
	}
	for i := range cfg.Bundles {
		b := &cfg.Bundles[i]
		g, err := get(b.Package, fmt.Sprintf("bundle %q", b.Name))
		if err != nil {
			return nil, err
		}
		g.bundles = append(g.bundles, b)
	}
	root := &pkgGroup{}
	for i := range cfg.Others {
		o := &cfg.Others[i]
		if o.Package == "" {
			root.others = append(root.others, o)
			continue
		}
		g, err := get(o.Package, "")
		if err != nil {
			return nil, err
		}
		g.others = append(g.others, o)
	}
	for i := range cfg.Deprecations {
		d := &cfg.Deprecations[i]
		g, err := get(d.Package, "an olm.deprecations blob")
		if err != nil {
			return nil, err
		}
		g.deprecations = append(g.deprecations, d)
	}
	groups := make([]*pkgGroup, 0, len(byName)+1)
	for _, g := range byName {
		slices.SortStableFunc(g.channels, func(a, b *Channel) int { return cmp.Compare(a.Name, b.Name) })
		slices.SortStableFunc(g.bundles, func(a, b *Bundle) int { return cmp.Compare(a.Name, b.Name) })
		slices.SortStableFunc(g.others, func(a, b *Meta) int { return cmp.Compare(a.Schema, b.Schema) })
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b *pkgGroup) int { return cmp.Compare(a.name, b.name) })
	if len(root.others) > 0 {
		groups = append(groups, root)
	}
	return groups, nil
}

// writeStream writes all blobs to w in catalog order, one blob at a time
// and in chunks, on the calling goroutine: a stream has one order, and
// encoding ahead of the writer would have to buffer whole blobs (a big
// bundle is megabytes of indented JSON) for little gain; WriteFS, whose
// files are independent, is the parallel writer.
func writeStream(w io.Writer, cfg *DeclarativeConfig, format Format) error {
	groups, err := groupByPackage(cfg)
	if err != nil {
		return fmt.Errorf("write catalog: %w", err)
	}
	sc := getScratch()
	defer putScratch(sc)
	var enc blobEncoder
	enc.use(sc)
	defer enc.keep(sc)
	for _, g := range groups {
		if err := enc.group(g, format, w); err != nil {
			return fmt.Errorf("write catalog: %w", err)
		}
	}
	return nil
}

// appendBlobs appends the group's blobs in write order.
func (g *pkgGroup) appendBlobs(all []any) []any {
	for _, p := range g.packages {
		all = append(all, p)
	}
	for _, c := range g.channels {
		all = append(all, c)
	}
	for _, b := range g.bundles {
		all = append(all, b)
	}
	for _, o := range g.others {
		all = append(all, o)
	}
	for _, d := range g.deprecations {
		all = append(all, d)
	}
	return all
}

// fallbackBlobs counts blobs written by the reference encoders (for tests
// and benchmarks: it should stay near zero on real catalogs).
var fallbackBlobs atomic.Int64

// blobEncoder encodes blobs; one per goroutine, buffers reused.
type blobEncoder struct {
	t   tree
	y   yamlEmitter
	j   jsonEmitter
	out []byte
}

func (e *blobEncoder) use(sc *scratch) {
	sc.useTree(&e.t)
	e.out = sc.a[:0]
}

func (e *blobEncoder) keep(sc *scratch) {
	sc.keepTree(&e.t)
	sc.a = e.out
	e.out = nil
}

// group writes one package's blobs to w, encoding one blob at a time and
// writing in chunks.
func (e *blobEncoder) group(g *pkgGroup, format Format, w io.Writer) error {
	const chunk = 256 << 10
	e.out = e.out[:0]
	for _, v := range g.appendBlobs(nil) {
		if err := e.blob(v, format); err != nil {
			return err
		}
		if len(e.out) >= chunk {
			if _, err := w.Write(e.out); err != nil {
				return err
			}
			e.out = e.out[:0]
		}
	}
	_, err := w.Write(e.out)
	e.out = e.out[:0]
	return err
}

// blob appends one encoded blob to e.out.
func (e *blobEncoder) blob(v any, format Format) error {
	var err error
	if format == FormatYAML {
		err = e.yamlBlob(v)
	} else {
		err = e.jsonBlob(v)
	}
	if err != nil {
		return fmt.Errorf("encode %s: %w", describeBlob(v), err)
	}
	return nil
}

func describeBlob(v any) string {
	switch b := v.(type) {
	case *Package:
		return fmt.Sprintf("package %q", b.Name)
	case *Channel:
		return fmt.Sprintf("package %q channel %q", b.Package, b.Name)
	case *Bundle:
		return fmt.Sprintf("package %q bundle %q", b.Package, b.Name)
	case *Deprecation:
		return fmt.Sprintf("package %q deprecations", b.Package)
	case *Meta:
		return fmt.Sprintf("%s blob %q", b.Schema, b.Name)
	}
	return "blob"
}

func (e *blobEncoder) jsonBlob(v any) error {
	e.j.out = e.out
	mark := len(e.out)
	var err error
	switch b := v.(type) {
	case *Package:
		err = e.j.pkg(b)
	case *Channel:
		err = e.j.channel(b)
	case *Bundle:
		err = e.j.bundle(b)
	case *Deprecation:
		err = e.j.deprecation(b)
	case *Meta:
		err = e.j.meta(b)
	}
	e.j.out = append(e.j.out, '\n')
	e.out = e.j.out
	if err != nil {
		// encoding/json decides: it reports what is wrong with the value.
		fallbackBlobs.Add(1)
		e.out = e.out[:mark]
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "    ")
		if err := enc.Encode(v); err != nil {
			return err
		}
		e.out = append(e.out, buf.Bytes()...)
	}
	return nil
}

func (e *blobEncoder) yamlBlob(v any) error {
	mark := len(e.out)
	e.out = append(e.out, "---\n"...)
	root, err := e.yamlTree(v)
	if err == nil {
		e.y.t = &e.t
		e.y.out = e.out
		err = e.y.emitDoc(root)
		e.out = e.y.out
	}
	if err == nil {
		return nil
	}
	// The reference encoder: exactly opm's yamlEncoder.
	fallbackBlobs.Add(1)
	e.out = e.out[:mark]
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	y, err := sigsyaml.JSONToYAML(buf.Bytes())
	if err != nil {
		return err
	}
	e.out = append(e.out, "---\n"...)
	e.out = append(e.out, y...)
	return nil
}

// yamlTree builds the tree of a blob as encoding/json would marshal it.
func (e *blobEncoder) yamlTree(v any) (int32, error) {
	t := &e.t
	t.reset(nil)
	root := t.add(kindMap)
	switch b := v.(type) {
	case *Package:
		e.str(root, "schema", b.Schema)
		e.str(root, "name", b.Name)
		e.str(root, "defaultChannel", b.DefaultChannel)
		if b.Icon != nil {
			icon := e.member(root, "icon", kindMap)
			if b.Icon.Data == nil {
				e.member(icon, "base64data", kindNull)
			} else {
				n := e.member(icon, "base64data", kindString)
				start := len(t.buf)
				t.buf = base64.StdEncoding.AppendEncode(t.buf, b.Icon.Data)
				t.nodes[n].text = t.bufSpan(start)
			}
			e.str(icon, "mediatype", b.Icon.MediaType)
		}
		if b.Description != "" {
			e.str(root, "description", b.Description)
		}
		if err := e.properties(root, b.Properties); err != nil {
			return -1, err
		}
	case *Channel:
		e.str(root, "schema", b.Schema)
		e.str(root, "name", b.Name)
		e.str(root, "package", b.Package)
		if b.Entries == nil {
			e.member(root, "entries", kindNull)
		} else {
			entries := e.member(root, "entries", kindSeq)
			for i := range b.Entries {
				en := &b.Entries[i]
				m := e.item(entries, kindMap)
				e.str(m, "name", en.Name)
				if en.Replaces != "" {
					e.str(m, "replaces", en.Replaces)
				}
				if len(en.Skips) > 0 {
					skips := e.member(m, "skips", kindSeq)
					for _, s := range en.Skips {
						n := e.item(skips, kindString)
						t.nodes[n].text = t.addString(s)
					}
				}
				if en.SkipRange != "" {
					e.str(m, "skipRange", en.SkipRange)
				}
			}
		}
		if err := e.properties(root, b.Properties); err != nil {
			return -1, err
		}
	case *Bundle:
		e.str(root, "schema", b.Schema)
		if b.Name != "" {
			e.str(root, "name", b.Name)
		}
		if b.Package != "" {
			e.str(root, "package", b.Package)
		}
		e.str(root, "image", b.Image)
		if err := e.properties(root, b.Properties); err != nil {
			return -1, err
		}
		if len(b.RelatedImages) > 0 {
			ris := e.member(root, "relatedImages", kindSeq)
			for i := range b.RelatedImages {
				m := e.item(ris, kindMap)
				e.str(m, "name", b.RelatedImages[i].Name)
				e.str(m, "image", b.RelatedImages[i].Image)
			}
		}
	case *Deprecation:
		e.str(root, "schema", b.Schema)
		e.str(root, "package", b.Package)
		if b.Entries == nil {
			e.member(root, "entries", kindNull)
		} else {
			entries := e.member(root, "entries", kindSeq)
			for i := range b.Entries {
				en := &b.Entries[i]
				m := e.item(entries, kindMap)
				ref := e.member(m, "reference", kindMap)
				e.str(ref, "schema", en.Reference.Schema)
				if en.Reference.Name != "" {
					e.str(ref, "name", en.Reference.Name)
				}
				e.str(m, "message", en.Message)
			}
		}
	case *Meta:
		t.reset(nil)
		return e.rawValue(b.Blob)
	}
	return root, nil
}

func (e *blobEncoder) member(parent int32, key string, k kind) int32 {
	t := &e.t
	n := t.add(k)
	t.nodes[n].key = t.addString(key)
	t.addChild(parent, n)
	return n
}

func (e *blobEncoder) item(parent int32, k kind) int32 {
	n := e.t.add(k)
	e.t.addChild(parent, n)
	return n
}

func (e *blobEncoder) str(parent int32, key, val string) {
	n := e.member(parent, key, kindString)
	e.t.nodes[n].text = e.t.addString(val)
}

func (e *blobEncoder) properties(root int32, props []Property) error {
	if len(props) == 0 {
		return nil
	}
	t := &e.t
	seq := e.member(root, "properties", kindSeq)
	for i := range props {
		m := e.item(seq, kindMap)
		e.str(m, "type", props[i].Type)
		var v int32
		if props[i].Value == nil {
			v = t.add(kindNull)
		} else {
			var err error
			if v, err = e.rawValue(props[i].Value); err != nil {
				return err
			}
		}
		t.nodes[v].key = t.addString("value")
		t.addChild(m, v)
	}
	return nil
}

// rawValue parses raw JSON into the tree. Input yaml.v2 would read
// differently from JSON, or not at all, is left to the reference encoder.
func (e *blobEncoder) rawValue(raw []byte) (int32, error) {
	if len(raw) == 0 {
		return -1, errFallback
	}
	t := &e.t
	p := jsonParser{t: t, src: raw, srcID: t.addSource(raw), yamlView: true}
	v, err := p.value()
	if err != nil {
		return -1, errFallback
	}
	p.skipSpace()
	if p.pos != len(raw) {
		return -1, errFallback
	}
	return v, nil // repeated keys are caught while emitting
}
