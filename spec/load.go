package spec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Config is the validated, defaulted desired state read from a spec
// directory.
type Config struct {
	Catalogs []*Catalog
	// Mirror is the destination of every copied image; nil when the spec
	// has none (then every Catalog must name its target).
	Mirror *Mirror
	// Samples is the samples operator configuration; nil leaves it alone.
	Samples *Samples
	// Files lists every file read, in the order read.
	Files []string
	// Warnings are problems that do not stop a run.
	Warnings Problems
}

// LoadOptions tunes Load.
type LoadOptions struct {
	// Exclude lists slash paths, relative to the root, that are never read
	// as spec: the render directory, above all, whose YAML is Ferry's own
	// output.
	Exclude []string
	// MaxFileSize bounds one spec file; 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// MaxTotalSize bounds the spec files of the directory together; 0
	// means DefaultMaxTotalSize.
	MaxTotalSize int64
}

// The limits on what a spec directory may cost to read. A config repo is
// input anyone with push access controls, and the daemon reads it
// unattended: no file, document or alias may make loading take unbounded
// memory or time. Parsed YAML costs about 200 bytes of memory per node, so a
// 1 MiB file of one-character list items costs about 100 MB at worst; real
// spec files are a few KB.
const (
	// DefaultMaxFileSize bounds one spec file (the size of a ConfigMap).
	// Bigger YAML files under a local Catalog source directory are catalog
	// content and are left to the catalog reader.
	DefaultMaxFileSize = 1 << 20
	// DefaultMaxTotalSize bounds the spec files of a directory together
	// (catalog content kept beside the specs does not count). Decoded and
	// checked, a MiB of dense spec (tens of thousands of image references)
	// holds about 40 MB; real config repos hold a few hundred KB.
	DefaultMaxTotalSize = 4 << 20
	// MaxDocumentNodes bounds one document as written (200000 values: a
	// Mirror with as many additional images), so a dense file is refused
	// before decoding multiplies its cost.
	MaxDocumentNodes = 200_000
	// MaxAliasNodes bounds what YAML aliases may add to one document: the
	// nodes an alias stands for count every time it is used, so nested
	// aliases ("billion laughs") cannot multiply a small file into
	// gigabytes of decoded values.
	MaxAliasNodes = 100_000
	// MaxAliasDepth bounds aliases used inside what other aliases stand for.
	MaxAliasDepth = 10
	// MaxProblems bounds the problems listed; the rest are counted, so a
	// broken generated file gets a readable report and bounded memory.
	MaxProblems = 1000
)

func (o LoadOptions) maxFileSize() int64 {
	if o.MaxFileSize > 0 {
		return o.MaxFileSize
	}
	return DefaultMaxFileSize
}

func (o LoadOptions) maxTotalSize() int64 {
	if o.MaxTotalSize > 0 {
		return o.MaxTotalSize
	}
	return DefaultMaxTotalSize
}

// DefaultRenderDir is where rendered output lives inside a config repo, and
// so is excluded from spec loading by default.
const DefaultRenderDir = "rendered"

// DefaultLoadOptions returns the options the CLI uses.
func DefaultLoadOptions() LoadOptions {
	return LoadOptions{Exclude: []string{DefaultRenderDir}}
}

// Load is LoadContext without cancellation.
func Load(fsys fs.FS, opts LoadOptions) (*Config, error) {
	return LoadContext(context.Background(), fsys, opts)
}

// LoadContext reads every .yaml/.yml file under fsys (nested folders, many
// documents per file), skipping hidden directories and opts.Exclude,
// decodes each document strictly, applies defaults and validates the whole.
// On any error-severity problem it returns a *InvalidError listing every
// problem found and no Config; when ctx is done it stops between files and
// documents and returns ctx's error.
//
// Only regular files are read, within the size limits. fsys decides which
// symbolic links may be followed: the CLI hands in a view that follows a
// link only while it stays inside the directory, and reports the others;
// a link is never read as anything but what it leads to.
func LoadContext(ctx context.Context, fsys fs.FS, opts LoadOptions) (*Config, error) {
	l := &loader{fsys: fsys, opts: opts, ctx: ctx}
	excluded := map[string]bool{}
	for _, e := range opts.Exclude {
		excluded[path.Clean(e)] = true
	}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			l.problem(Problem{File: p, Message: fileError(err)})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if p != "." && (excluded[p] || strings.HasPrefix(d.Name(), ".")) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isYAML(p) {
			return nil
		}
		l.readFile(p, d)
		return nil
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("read spec directory: %w", err)
	}
	l.finish()
	ps := l.problems.done()
	if len(ps.Errors()) > 0 {
		return nil, &InvalidError{Problems: ps}
	}
	l.cfg.Warnings = ps
	return &l.cfg, nil
}

func isYAML(p string) bool {
	ext := strings.ToLower(path.Ext(p))
	return ext == ".yaml" || ext == ".yml"
}

type loader struct {
	ctx     context.Context
	fsys    fs.FS
	opts    LoadOptions
	cfg     Config
	mirrors []*Mirror
	samples []*Samples
	// ocMirrors hold what ImageSetConfigurations add to the Mirror; they
	// merge into the one Mirror (or stand in for it when there is none).
	ocMirrors []ocMirror
	ocOrigins []*Origin
	problems  problemList
	// total is what the files holding spec documents weighed so far.
	total      int64
	overTotal  bool
	oversized  []oversizedFile
	templateAt map[string]map[int]bool // file -> lines holding "{{"
}

// oversizedFile is a YAML file over the size limit, judged once every
// Catalog is known: under a local Catalog source it is catalog content.
type oversizedFile struct {
	path string
	size int64 // -1: it grew past the limit while read
}

func (l *loader) problem(p Problem) { l.problems.add(p) }

// fileError is an I/O error's message without the operation and path the
// Problem already shows.
func fileError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	msg := err.Error()
	if errors.Is(err, fs.ErrNotExist) {
		msg = "does not exist (a dangling symbolic link?)"
	}
	return msg
}

// readFile reads one spec file if it is a regular file within the limit.
// The type is checked before the file is opened: opening a FIFO blocks
// until someone writes to it.
func (l *loader) readFile(p string, d fs.DirEntry) {
	limit := l.opts.maxFileSize()
	mode := d.Type()
	var size int64 = -1
	if mode != 0 { // not a plain regular file: see what it leads to
		fi, err := fs.Stat(l.fsys, p)
		if err != nil {
			l.problem(Problem{File: p, Message: "cannot be read: " + fileError(err)})
			return
		}
		mode, size = fi.Mode(), fi.Size()
		if !mode.IsRegular() {
			via := ""
			if d.Type()&fs.ModeSymlink != 0 {
				via = " (through a symbolic link)"
			}
			l.problem(Problem{File: p, Message: fmt.Sprintf("is a %s%s, not a regular file: spec files must be regular files", describeMode(mode), via)})
			return
		}
	} else if fi, err := d.Info(); err == nil {
		size = fi.Size()
	}
	if size > limit {
		l.oversized = append(l.oversized, oversizedFile{path: p, size: size})
		return
	}
	if l.overTotal {
		return // reported once; reading more would only cost memory
	}
	f, err := l.fsys.Open(p)
	if err != nil {
		l.problem(Problem{File: p, Message: "cannot be read: " + fileError(err)})
		return
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	f.Close()
	if err != nil {
		l.problem(Problem{File: p, Message: "cannot be read: " + fileError(err)})
		return
	}
	if int64(len(data)) > limit {
		l.oversized = append(l.oversized, oversizedFile{path: p, size: -1})
		return
	}
	l.loadFile(p, data)
}

// describeMode names a file type for messages.
func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func (l *loader) loadFile(file string, data []byte) {
	if bytes.Contains(data, []byte("{{")) {
		l.noteTemplates(file, data)
	}
	// Parse every document first: a file with a syntax error contributes
	// that one problem and nothing else.
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		if l.ctx.Err() != nil {
			return
		}
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			l.problem(syntaxProblem(file, data, err))
			return // the decoder cannot resynchronise after a syntax error
		}
		if n := documentContent(&doc); n != nil {
			docs = append(docs, n)
		}
	}
	counted := false
	for _, d := range docs {
		if l.ctx.Err() != nil {
			return
		}
		if l.loadDocument(file, d) && !counted {
			l.cfg.Files = append(l.cfg.Files, file)
			counted = true
		}
	}
	if counted {
		l.total += int64(len(data))
		if l.total > l.opts.maxTotalSize() && !l.overTotal {
			l.overTotal = true
			total, limit := formatSizes(l.total, l.opts.maxTotalSize())
			l.problem(Problem{File: file, Message: fmt.Sprintf("the spec files read up to this one weigh %s, over the %s limit for a spec directory; the rest is not read (is this the right directory?)", total, limit)})
		}
	}
}

// documentContent returns a document's root node, or nil for an empty
// document: nothing, or only comments, between two "---" (kubectl accepts
// both, and so does Ferry).
func documentContent(doc *yaml.Node) *yaml.Node {
	if len(doc.Content) == 0 {
		return nil
	}
	n := doc.Content[0]
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Style == 0 && (n.Value == "" || n.Value == "~" || n.Value == "null") {
		return nil
	}
	return n
}

// syntaxProblem locates a YAML syntax error. yaml.v3 gives no line for
// bytes it cannot read at all (invalid UTF-8, control characters, binary
// content), so those are found here.
func syntaxProblem(file string, data []byte, err error) Problem {
	p := Problem{File: file, Message: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		// yaml.v3 reports parser (not scanner) errors with a
		// 0-based line; they are the "did not find expected" ones.
		if strings.Contains(err.Error(), "did not find expected") {
			p.Line++
		}
	} else if line, col, what, why, ok := badByte(data); ok {
		p.Line = line
		p.Message = fmt.Sprintf("not valid YAML: %s at column %d%s", what, col, why)
	}
	p.Message = yamlLineRE.ReplaceAllString(p.Message, "")
	p.Message = strings.Replace(p.Message, "YAML: : ", "YAML: ", 1)
	if bytes.Contains(data, []byte("{{")) {
		p.Message = "looks like a Go template ({{ ... }}), not YAML; render the template and commit its output: " + p.Message
	}
	return p
}

// badByte finds the first byte YAML does not allow: invalid UTF-8, or a
// control character other than tab, line feed and carriage return. A file
// with a byte order mark is left to the YAML decoder (UTF-16 is allowed).
func badByte(data []byte) (line, col int, what, why string, ok bool) {
	if bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.HasPrefix(data, []byte{0xff, 0xfe}) {
		return 0, 0, "", "", false
	}
	line, col = 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return line, col, fmt.Sprintf("invalid UTF-8 byte 0x%02x", data[i]), ": spec files must be UTF-8", true
		case r == 0:
			return line, col, "NUL byte", ": this looks like a binary file", true
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0x7f, r >= 0x80 && r < 0xa0 && r != 0x85, r == 0xfffe, r == 0xffff:
			return line, col, fmt.Sprintf("control character U+%04X", r), "", true
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return 0, 0, "", "", false
}

// noteTemplates remembers the lines of a file that hold "{{", so a problem
// found there can say the value looks like a Go template.
func (l *loader) noteTemplates(file string, data []byte) {
	if l.templateAt == nil {
		l.templateAt = map[string]map[int]bool{}
	}
	lines := map[int]bool{}
	for i, line := range bytes.Split(data, []byte("\n")) {
		if bytes.Contains(line, []byte("{{")) {
			lines[i+1] = true
		}
	}
	l.templateAt[file] = lines
}

// header is what identifies a document before it is decoded.
type header struct {
	apiVersion, kind, name string
	schema                 bool // an FBC blob
}

func readHeader(n *yaml.Node) header {
	var h header
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		switch k {
		case "apiVersion":
			h.apiVersion = v.Value
		case "kind":
			h.kind = v.Value
		case "schema":
			h.schema = true
		case "metadata":
			if v.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(v.Content); j += 2 {
					if v.Content[j].Value == "name" {
						h.name = v.Content[j+1].Value
					}
				}
			}
		}
	}
	return h
}

// loadDocument reads one document and reports whether it was a spec
// document (as opposed to catalog content that lives beside the specs).
func (l *loader) loadDocument(file string, n *yaml.Node) bool {
	if n.Kind != yaml.MappingNode {
		l.problem(Problem{File: file, Line: n.Line, Message: fmt.Sprintf("a document must be a mapping with apiVersion and kind, got %s", describe(n))})
		return true
	}
	h := readHeader(n)
	origin := &Origin{File: file, Line: n.Line}
	if h.apiVersion == "" && h.kind == "" && h.schema {
		// File-based catalog content (olm.package, olm.bundle, ...) kept
		// next to the specs, typically a local Catalog source.
		return false
	}
	if line, msg, ok := checkAliases(n); !ok {
		l.problem(Problem{File: file, Line: line, Kind: h.kind, Name: h.name, Message: msg})
		return true
	}
	switch {
	case h.apiVersion == APIVersion:
		switch h.kind {
		case KindCatalog:
			c := &Catalog{Origin: origin}
			if l.decodeInto(n, c, origin, h) {
				l.cfg.Catalogs = append(l.cfg.Catalogs, c)
			}
		case KindMirror:
			m := &Mirror{Origin: origin}
			if l.decodeInto(n, m, origin, h) {
				l.mirrors = append(l.mirrors, m)
			}
		case KindSamples:
			s := &Samples{Origin: origin}
			if l.decodeInto(n, s, origin, h) {
				l.samples = append(l.samples, s)
			}
		default:
			l.problem(Problem{File: file, Line: origin.LineOf("kind"), Kind: h.kind, Name: h.name, Field: "kind",
				Message: fmt.Sprintf("unknown kind %q for %s; expected %s, %s or %s", h.kind, APIVersion, KindCatalog, KindMirror, KindSamples)})
		}
	case isOCMirrorAPIVersion(h.apiVersion):
		l.loadOCMirror(file, n, origin, h)
	case h.apiVersion == "" || h.kind == "":
		l.problem(Problem{File: file, Line: n.Line, Kind: h.kind, Name: h.name,
			Message: "not a Ferry document: apiVersion and kind are required"})
	default:
		l.problem(Problem{File: file, Line: n.Line, Kind: h.kind, Name: h.name, Field: "apiVersion",
			Message: fmt.Sprintf("unknown apiVersion %q; expected %s (Catalog, Mirror, Samples) or mirror.openshift.io/v1alpha2 or v2alpha1 (ImageSetConfiguration)", h.apiVersion, APIVersion)})
	}
	return true
}

// decodeInto strictly decodes n into obj, recording field lines in origin.
// It reports false when the document had problems.
func (l *loader) decodeInto(n *yaml.Node, obj any, origin *Origin, h header) bool {
	d := newDecoder()
	d.decode(n, reflect.ValueOf(obj).Elem(), "")
	origin.lines = d.lines
	l.decoderProblems(origin.File, h, d)
	return len(d.errs) == 0
}

// decoderProblems reports what a decoder found, its warnings too.
func (l *loader) decoderProblems(file string, h header, d *decoder) {
	for _, e := range d.errs {
		l.problem(Problem{File: file, Line: e.line, Kind: h.kind, Name: h.name, Field: e.path, Message: e.msg})
	}
	for _, w := range d.warns {
		l.problem(Problem{Severity: SeverityWarning, File: file, Line: w.line, Kind: h.kind, Name: h.name, Field: w.path, Message: w.msg})
	}
	if d.dropped > 0 {
		if l.problems.dropped == 0 {
			l.problems.firstDropped = file
		}
		l.problems.dropped += d.dropped
	}
}

// finish applies defaults and validates once every document is read, since
// defaults and checks look across objects (a Catalog's target comes from the
// Mirror).
func (l *loader) finish() {
	v := &validator{fsys: l.fsys, problems: &l.problems}
	if len(l.mirrors) > 1 {
		for _, m := range l.mirrors[1:] {
			v.at(m.Origin, KindMirror, m.Metadata.Name, "", "only one Mirror is allowed; %s/%s is already defined in %s", KindMirror, l.mirrors[0].Metadata.Name, l.mirrors[0].Origin.File)
		}
	}
	if len(l.mirrors) > 0 {
		l.cfg.Mirror = l.mirrors[0]
	}
	if len(l.mirrors) == 0 {
		for _, o := range l.ocOrigins {
			v.warn(o, KindImageSetConfiguration, "", "", "no Mirror is defined: add one naming the destination registry (what oc-mirror took on its command line) before reconciling")
		}
	}
	if len(l.samples) > 1 {
		for _, s := range l.samples[1:] {
			v.at(s.Origin, KindSamples, s.Metadata.Name, "", "only one Samples is allowed (the cluster has one samples config); %s/%s is already defined in %s", KindSamples, l.samples[0].Metadata.Name, l.samples[0].Origin.File)
		}
	}
	if len(l.samples) > 0 {
		l.cfg.Samples = l.samples[0]
	}
	applyDefaults(&l.cfg)
	v.config(&l.cfg, l.mirrors, l.samples)
	// What the Mirror lists, with where each entry was written, for the
	// checks across files below.
	var added, blocked []entry
	if m := l.cfg.Mirror; m != nil {
		for i, img := range m.Spec.AdditionalImages {
			added = append(added, entry{value: img, origin: m.Origin, kind: KindMirror, name: m.Metadata.Name, field: fmt.Sprintf("spec.additionalImages[%d]", i)})
		}
		for i, b := range m.Spec.BlockedImages {
			blocked = append(blocked, entry{value: b, origin: m.Origin, kind: KindMirror, name: m.Metadata.Name, field: fmt.Sprintf("spec.blockedImages[%d]", i)})
		}
	}
	// Merged after validation: oc-mirror entries were checked where they
	// were written, and must not be reported again as the Mirror's.
	for _, om := range l.ocMirrors {
		added = append(added, om.added...)
		blocked = append(blocked, om.blocked...)
		if l.cfg.Mirror == nil {
			l.cfg.Mirror = om.mirror
			mirrorDefaults(om.mirror)
			continue
		}
		mergeMirror(&l.cfg.Mirror.Spec, &om.mirror.Spec)
	}
	v.blockedAdditions(added, blocked, l.cfg.Catalogs)
	v.destinations(&l.cfg, added)
	l.reportOversized()
	l.templateHints()
}

// reportOversized reports the YAML files over the size limit that are not
// catalog content of a local Catalog source.
func (l *loader) reportOversized() {
	limit := l.opts.maxFileSize()
	for _, f := range l.oversized {
		local := false
		for _, c := range l.cfg.Catalogs {
			if dir, ok := c.SourceDir(); ok && (dir == "." || strings.HasPrefix(f.path, dir+"/")) {
				local = true
			}
		}
		if local {
			continue // catalog content: the catalog reader has its own limits
		}
		size, max := "grew past the limit while read", formatSize(limit)
		if f.size >= 0 {
			size, max = formatSizes(f.size, limit)
			size = "is " + size
		}
		l.problem(Problem{File: f.path, Message: fmt.Sprintf("%s, over the %s limit for a spec file: split it into several files, or keep catalog content in a local Catalog source directory", size, max)})
	}
}

// templateHints says so when a problem sits on a line holding "{{": the
// value is most likely an unrendered Go template.
func (l *loader) templateHints() {
	const hint = "looks like a Go template ({{ ... }})"
	for i := range l.problems.list {
		p := &l.problems.list[i]
		if l.templateAt[p.File][p.Line] && !strings.HasPrefix(p.Message, hint) {
			p.Message = hint + "; render the template and commit its output: " + p.Message
		}
	}
}

// formatSizes prints a size and its limit, in bytes when rounding would
// make them look equal.
func formatSizes(n, limit int64) (string, string) {
	a, b := formatSize(n), formatSize(limit)
	if a == b {
		return fmt.Sprintf("%d bytes", n), fmt.Sprintf("%d-byte", limit)
	}
	return a, b
}

// formatSize prints a byte count the way the limits are documented.
func formatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// mergeMirror adds what an ImageSetConfiguration lists to a Mirror,
// keeping the first occurrence of each entry.
func mergeMirror(dst, src *MirrorSpec) {
	dst.AdditionalImages = appendNew(dst.AdditionalImages, src.AdditionalImages)
	dst.BlockedImages = appendNew(dst.BlockedImages, src.BlockedImages)
	dst.Platforms = appendNew(dst.Platforms, src.Platforms)
}

func appendNew(dst, src []string) []string {
	have := make(map[string]bool, len(dst))
	for _, s := range dst {
		have[s] = true
	}
	for _, s := range src {
		if !have[s] {
			have[s] = true
			dst = append(dst, s)
		}
	}
	return dst
}
