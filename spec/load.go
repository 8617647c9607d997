package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"

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
}

// DefaultRenderDir is where rendered output lives inside a config repo, and
// so is excluded from spec loading by default.
const DefaultRenderDir = "rendered"

// DefaultLoadOptions returns the options the CLI uses.
func DefaultLoadOptions() LoadOptions {
	return LoadOptions{Exclude: []string{DefaultRenderDir}}
}

// Load reads every .yaml/.yml file under fsys (nested folders, many
// documents per file), skipping hidden directories and opts.Exclude,
// decodes each document strictly, applies defaults and validates the whole.
// On any error-severity problem it returns a *InvalidError listing every
// problem found and no Config.
func Load(fsys fs.FS, opts LoadOptions) (*Config, error) {
	l := &loader{fsys: fsys}
	excluded := map[string]bool{}
	for _, e := range opts.Exclude {
		excluded[path.Clean(e)] = true
	}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			l.problem(Problem{File: p, Message: err.Error()})
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
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			l.problem(Problem{File: p, Message: err.Error()})
			return nil
		}
		l.loadFile(p, data)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read spec directory: %w", err)
	}
	l.finish()
	l.problems.sort()
	if len(l.problems.Errors()) > 0 {
		return nil, &InvalidError{Problems: l.problems}
	}
	l.cfg.Warnings = l.problems
	return &l.cfg, nil
}

func isYAML(p string) bool {
	ext := strings.ToLower(path.Ext(p))
	return ext == ".yaml" || ext == ".yml"
}

type loader struct {
	fsys    fs.FS
	cfg     Config
	mirrors []*Mirror
	samples []*Samples
	// ocMirrors hold what ImageSetConfigurations add to the Mirror; they
	// merge into the one Mirror (or stand in for it when there is none).
	ocMirrors []*Mirror
	ocOrigins []*Origin
	problems  Problems
}

func (l *loader) problem(p Problem) {
	if p.Severity == "" {
		p.Severity = SeverityError
	}
	l.problems = append(l.problems, p)
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func (l *loader) loadFile(file string, data []byte) {
	// Parse every document first: a file with a syntax error contributes
	// that one problem and nothing else.
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p := Problem{File: file, Message: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
			if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
				p.Line, _ = strconv.Atoi(m[1])
				// yaml.v3 reports parser (not scanner) errors with a
				// 0-based line; they are the "did not find expected" ones.
				if strings.Contains(err.Error(), "did not find expected") {
					p.Line++
				}
			}
			p.Message = yamlLineRE.ReplaceAllString(p.Message, "")
			p.Message = strings.Replace(p.Message, "YAML: : ", "YAML: ", 1)
			if bytes.Contains(data, []byte("{{")) {
				p.Message = "looks like a Go template ({{ ... }}), not YAML; render the template and commit its output: " + p.Message
			}
			l.problem(p)
			return // the decoder cannot resynchronise after a syntax error
		}
		if len(doc.Content) > 0 { // else an empty document, e.g. after a trailing ---
			docs = append(docs, doc.Content[0])
		}
	}
	counted := false
	for _, d := range docs {
		if l.loadDocument(file, d) && !counted {
			l.cfg.Files = append(l.cfg.Files, file)
			counted = true
		}
	}
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
	switch {
	case h.apiVersion == "" && h.kind == "" && h.schema:
		// File-based catalog content (olm.package, olm.bundle, ...) kept
		// next to the specs, typically a local Catalog source.
		return false
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
	for _, e := range d.errs {
		l.problem(Problem{File: origin.File, Line: e.line, Kind: h.kind, Name: h.name, Field: e.path, Message: e.msg})
	}
	return len(d.errs) == 0
}

// finish applies defaults and validates once every document is read, since
// defaults and checks look across objects (a Catalog's target comes from the
// Mirror).
func (l *loader) finish() {
	v := &validator{fsys: l.fsys}
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
	// Merged after validation: oc-mirror entries were checked where they
	// were written, and must not be reported again as the Mirror's.
	for _, om := range l.ocMirrors {
		if l.cfg.Mirror == nil {
			l.cfg.Mirror = om
			mirrorDefaults(om)
			continue
		}
		mergeMirror(&l.cfg.Mirror.Spec, &om.Spec)
	}
	l.problems = append(l.problems, v.problems...)
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
