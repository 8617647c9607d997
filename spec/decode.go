package spec

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// decoder fills typed values from YAML nodes. It exists instead of
// sigs.k8s.io/yaml's JSON round trip because that loses positions: here every
// field is decoded with its path and line, so unknown fields, wrong types and
// later validation findings all point at the exact line.
type decoder struct {
	lines map[string]int // field path -> line of its key
	errs  []fieldError
	warns []fieldError
	// foldCase matches field names case-insensitively, with a warning, the
	// way encoding/json (and so oc-mirror) reads them; only for oc-mirror
	// documents, whose real files rely on it ("additionalimages").
	foldCase bool
}

// scalarDecoder is a struct type that may also be written as a plain
// string (BundleRef: an image alone).
type scalarDecoder interface{ decodeScalar(string) }

type fieldError struct {
	path string
	line int
	msg  string
}

func newDecoder() *decoder { return &decoder{lines: map[string]int{}} }

func (d *decoder) fail(path string, line int, format string, args ...any) {
	d.errs = append(d.errs, fieldError{path: path, line: line, msg: fmt.Sprintf(format, args...)})
}

func joinPath(base, field string) string {
	if base == "" {
		return field
	}
	return base + "." + field
}

// decode stores n into v, which must be settable.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if _, ok := d.lines[path]; !ok {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an explicit null leaves the zero value, as omission does
	}
	if n.Kind == yaml.ScalarNode && v.CanAddr() {
		if s, ok := v.Addr().Interface().(scalarDecoder); ok {
			s.decodeScalar(n.Value)
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(path, n.Line, "must be a mapping, got %s", describe(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if seen[k.Value] {
				d.fail(p, k.Line, "duplicate key %q", k.Value)
				continue
			}
			seen[k.Value] = true
			d.lines[p] = k.Line
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, p)
			v.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n.Line, "must be a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(path, n.Line, "must be a string, got %s", describe(n))
			return
		}
		// The raw text, not YAML's reading of it: "4.10" stays "4.10" instead
		// of becoming the float 4.1.
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.fail(path, n.Line, "must be true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if n.Kind != yaml.ScalarNode || err != nil || v.OverflowInt(i) {
			d.fail(path, n.Line, "must be an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.fail(path, n.Line, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(&x).Elem())
	default:
		panic(fmt.Sprintf("spec: decoder cannot fill %s", v.Type()))
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "must be a mapping, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := joinPath(path, k.Value)
		if k.Value == "<<" {
			d.fail(path, k.Line, "YAML merge keys are not supported; write the fields out")
			continue
		}
		if seen[k.Value] {
			d.fail(p, k.Line, "duplicate field %q", k.Value)
			continue
		}
		seen[k.Value] = true
		idx, ok := fields.byName[k.Value]
		if !ok && d.foldCase {
			for _, name := range fields.names {
				if strings.EqualFold(name, k.Value) {
					idx, ok = fields.byName[name], true
					d.warns = append(d.warns, fieldError{path: p, line: k.Line, msg: fmt.Sprintf("read as %q; oc-mirror matches field names case-insensitively, Ferry asks for the exact spelling", name)})
					p = joinPath(path, name)
					break
				}
			}
		}
		if !ok {
			msg := fmt.Sprintf("unknown field %q", k.Value)
			if s := closest(k.Value, fields.names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.fail(p, k.Line, "%s", msg)
			continue
		}
		d.lines[p] = k.Line
		d.decode(val, v.FieldByIndex(idx), p)
	}
}

type structFields struct {
	byName map[string][]int
	names  []string
}

var fieldCache sync.Map // reflect.Type -> *structFields

// fieldsOf maps the JSON names of t's fields (inline structs flattened) to
// their index paths. JSON tags are the single naming source, so documents,
// JSON output and the field reference agree.
func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	sf := &structFields{byName: map[string][]int{}}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			idx := append(append([]int(nil), prefix...), i)
			if strings.Contains(opts, "inline") || (f.Anonymous && name == "") {
				walk(f.Type, idx)
				continue
			}
			if name == "" {
				name = f.Name
			}
			sf.byName[name] = idx
			sf.names = append(sf.names, name)
		}
	}
	walk(t, nil)
	sort.Strings(sf.names)
	fieldCache.Store(t, sf)
	return sf
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// closest suggests a known name for a misspelt one: same letters in another
// case, or at most two edits away.
func closest(name string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return k
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
