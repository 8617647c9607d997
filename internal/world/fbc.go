package world

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// FBC schema names the world interprets; every other schema is carried
// through untouched.
const (
	schemaPackage = "olm.package"
	schemaChannel = "olm.channel"
	schemaBundle  = "olm.bundle"
)

// doc is one FBC blob kept as a generic JSON object, so fields the world does
// not know (and fields added to FBC after it was written) survive a rewrite.
// Numbers stay json.Number so nothing is rounded.
type doc struct {
	file string // path in the source fs.FS, for error messages
	obj  map[string]any
}

func (d doc) str(key string) string {
	s, _ := d.obj[key].(string)
	return s
}

func (d doc) schema() string { return d.str("schema") }

// pkg is the package a document belongs to: its own name for olm.package,
// the "package" field for everything else.
func (d doc) pkg() string {
	if d.schema() == schemaPackage {
		return d.str("name")
	}
	return d.str("package")
}

// loadFBC reads every .json, .yaml and .yml file under fsys (in lexical
// order, as opm does) as a stream of FBC documents.
func loadFBC(fsys fs.FS) ([]doc, error) {
	var docs []doc
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch path.Ext(p) {
		case ".json", ".yaml", ".yml":
		default:
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		objs, err := decodeStream(b)
		if err != nil {
			return fmt.Errorf("parse %s: %w", p, err)
		}
		for _, o := range objs {
			docs = append(docs, doc{file: p, obj: o})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	if len(docs) == 0 {
		return nil, errors.New("load catalog: no FBC documents found")
	}
	return docs, nil
}

// decodeStream splits a file into its documents: a JSON stream when it starts
// with "{", else YAML documents separated by "---" lines.
func decodeStream(b []byte) ([]map[string]any, error) {
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	var raws [][]byte
	if bytes.HasPrefix(trimmed, []byte("{")) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		for {
			var raw json.RawMessage
			if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, err
			}
			raws = append(raws, raw)
		}
	} else {
		for i, y := range splitYAML(b) {
			j, err := yaml.YAMLToJSON(y)
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", i+1, err)
			}
			raws = append(raws, j)
		}
	}
	var out []map[string]any
	for i, raw := range raws {
		if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var o map[string]any
		if err := dec.Decode(&o); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// splitYAML cuts a YAML stream at document markers. A "---" line at column 0
// always starts a new document in YAML, even inside what looks like a block
// scalar, so a line-based split is exact.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<30)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.Equal(bytes.TrimRight(line, " \t\r"), []byte("---")) || bytes.HasPrefix(line, []byte("--- ")) {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			cur.Reset()
			if rest := bytes.TrimSpace(line[3:]); len(rest) > 0 {
				cur.Write(rest)
				cur.WriteByte('\n')
			}
			continue
		}
		cur.Write(line)
		cur.WriteByte('\n')
	}
	docs = append(docs, cur.Bytes())
	return docs
}

// Format is how the world writes catalog files.
type Format string

// Formats the world writes; opm reads both.
const (
	FormatYAML Format = "yaml"
	FormatJSON Format = "json"
)

// writeFBC groups docs by package into <package>/catalog.<ext> (documents
// without a package go to catalog.<ext> at the root), keeping each package's
// documents in input order, the way `opm render` output is laid out.
func writeFBC(docs []doc, format Format) (map[string][]byte, error) {
	ext := "yaml"
	if format == FormatJSON {
		ext = "json"
	}
	bufs := map[string]*bytes.Buffer{}
	for _, d := range docs {
		file := "catalog." + ext
		if p := d.pkg(); p != "" {
			file = p + "/" + file
		}
		buf := bufs[file]
		if buf == nil {
			buf = &bytes.Buffer{}
			bufs[file] = buf
		}
		j, err := marshalJSON(d.obj)
		if err != nil {
			return nil, fmt.Errorf("encode %s document from %s: %w", d.schema(), d.file, err)
		}
		if format == FormatJSON {
			var indented bytes.Buffer
			if err := json.Indent(&indented, j, "", "    "); err != nil {
				return nil, err
			}
			buf.Write(indented.Bytes())
			buf.WriteByte('\n')
			continue
		}
		y, err := yaml.JSONToYAML(j)
		if err != nil {
			return nil, fmt.Errorf("encode %s document from %s: %w", d.schema(), d.file, err)
		}
		buf.WriteString("---\n")
		buf.Write(y)
	}
	out := make(map[string][]byte, len(bufs))
	for k, v := range bufs {
		out[k] = v.Bytes()
	}
	return out, nil
}

// sortedKeys returns m's keys in order, for deterministic iteration.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// packageIndex is what the world needs to know about a catalog's graph to
// write bundle annotations, CSVs and the SQLite tables.
type packageIndex struct {
	packages map[string]*pkgInfo
}

type pkgInfo struct {
	name           string
	defaultChannel string
	icon           map[string]any
	description    string
	channels       map[string]*chanInfo
	bundles        map[string]doc // by bundle name
}

type chanInfo struct {
	name    string
	entries []entry // in catalog order
}

type entry struct {
	Name      string
	Replaces  string
	Skips     []string
	SkipRange string
}

// indexFBC collects packages, channels and bundles from docs.
func indexFBC(docs []doc) (*packageIndex, error) {
	idx := &packageIndex{packages: map[string]*pkgInfo{}}
	get := func(name string) *pkgInfo {
		p := idx.packages[name]
		if p == nil {
			p = &pkgInfo{name: name, channels: map[string]*chanInfo{}, bundles: map[string]doc{}}
			idx.packages[name] = p
		}
		return p
	}
	var errs []error
	for _, d := range docs {
		switch d.schema() {
		case schemaPackage:
			p := get(d.str("name"))
			p.defaultChannel = d.str("defaultChannel")
			p.icon, _ = d.obj["icon"].(map[string]any)
			p.description = d.str("description")
		case schemaChannel:
			p := get(d.pkg())
			c := &chanInfo{name: d.str("name")}
			ents, _ := d.obj["entries"].([]any)
			for _, e := range ents {
				em, _ := e.(map[string]any)
				en := entry{}
				en.Name, _ = em["name"].(string)
				en.Replaces, _ = em["replaces"].(string)
				en.SkipRange, _ = em["skipRange"].(string)
				skips, _ := em["skips"].([]any)
				for _, s := range skips {
					if s, ok := s.(string); ok {
						en.Skips = append(en.Skips, s)
					}
				}
				c.entries = append(c.entries, en)
			}
			p.channels[c.name] = c
		case schemaBundle:
			p := get(d.pkg())
			name := d.str("name")
			if _, dup := p.bundles[name]; dup {
				errs = append(errs, fmt.Errorf("%s: bundle %q of package %q appears twice", d.file, name, p.name))
			}
			p.bundles[name] = d
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return idx, nil
}

// channelsOf lists, sorted, the channels of p that contain bundle.
func (p *pkgInfo) channelsOf(bundle string) []string {
	var out []string
	for _, cn := range sortedKeys(p.channels) {
		for _, e := range p.channels[cn].entries {
			if e.Name == bundle {
				out = append(out, cn)
				break
			}
		}
	}
	return out
}

// entryOf returns the channel entry for bundle, preferring the default
// channel: a CSV has one replaces and one skipRange, while FBC may give each
// channel its own.
func (p *pkgInfo) entryOf(bundle string) (entry, bool) {
	order := append([]string{p.defaultChannel}, sortedKeys(p.channels)...)
	for _, cn := range order {
		c := p.channels[cn]
		if c == nil {
			continue
		}
		for _, e := range c.entries {
			if e.Name == bundle {
				return e, true
			}
		}
	}
	return entry{}, false
}

// properties returns the bundle's properties as (type, value) pairs.
func bundleProperties(d doc) []property {
	var out []property
	ps, _ := d.obj["properties"].([]any)
	for _, p := range ps {
		pm, _ := p.(map[string]any)
		t, _ := pm["type"].(string)
		out = append(out, property{Type: t, Value: pm["value"]})
	}
	return out
}

type property struct {
	Type  string
	Value any
}

// relatedImages returns the bundle's relatedImages entries, names kept
// (including the empty names real catalogs carry).
func relatedImages(d doc) []relatedImage {
	var out []relatedImage
	ris, _ := d.obj["relatedImages"].([]any)
	for _, r := range ris {
		rm, _ := r.(map[string]any)
		n, _ := rm["name"].(string)
		i, _ := rm["image"].(string)
		out = append(out, relatedImage{Name: n, Image: i})
	}
	return out
}

type relatedImage struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

// lines is a tiny helper for error text listing several names.
func lines(ss []string) string { return strings.Join(ss, ", ") }
