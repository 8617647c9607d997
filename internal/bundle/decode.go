package bundle

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// sniffLen is how far opm looks into a file to decide whether it holds JSON
// (apimachinery's NewYAMLOrJSONDecoder(r, 30) in operator-registry's
// decodeFileFS).
const sniffLen = 30

// decodeFirst decodes the first document of a manifest or metadata file into
// into, reading it the way opm's bundle parser does (apimachinery's
// YAMLOrJSONDecoder, one Decode call): a file whose first non-space byte
// within sniffLen bytes is '{' is read as a JSON stream, falling back to YAML
// when the first value does not decode; anything else is a stream of YAML
// documents separated by "---" lines, converted to JSON with sigs.k8s.io/yaml
// (so YAML 1.1 scalars such as yes/no become booleans, exactly as in opm).
// Later documents are ignored, as opm ignores them.
func decodeFirst(data []byte, into any) error {
	if looksJSON(data) {
		err := json.NewDecoder(bytes.NewReader(data)).Decode(into)
		if err == nil || errors.Is(err, io.EOF) {
			return err
		}
		// Ambiguous: retry as YAML (a superset of JSON), but report the
		// JSON error if that fails too, as apimachinery does.
		rest, ok := skipLeadingSpaceLine(data)
		if !ok {
			return err
		}
		if yerr := decodeFirstYAML(rest, into); yerr != nil {
			return err
		}
		return nil
	}
	return decodeFirstYAML(data, into)
}

// looksJSON reports whether the first non-space byte within sniffLen bytes is
// '{' (apimachinery's IsJSONBuffer).
func looksJSON(data []byte) bool {
	head := data[:min(len(data), sniffLen)]
	trimmed := bytes.TrimLeftFunc(head, unicode.IsSpace)
	return len(trimmed) > 0 && trimmed[0] == '{'
}

// skipLeadingSpaceLine drops leading whitespace up to and including the
// first newline, what apimachinery eats before switching from JSON to YAML.
func skipLeadingSpaceLine(data []byte) ([]byte, bool) {
	i := 0
	for i < len(data) {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return nil, false
		}
		if !unicode.IsSpace(r) {
			return data[i:], true
		}
		i += size
		if r == '\n' {
			return data[i:], true
		}
	}
	return nil, false
}

// decodeFirstYAML decodes the first YAML document of data into into.
func decodeFirstYAML(data []byte, into any) error {
	doc, err := firstYAMLDocument(data)
	if err != nil {
		return err
	}
	if len(doc) == 0 {
		return io.EOF
	}
	if err := yaml.Unmarshal(doc, into); err != nil {
		return err
	}
	return nil
}

// firstYAMLDocument returns the bytes of the first document of a YAML stream
// as apimachinery's YAMLReader splits it: a line starting with "---" ends a
// non-empty document (a leading separator stays part of the first one), and
// only spaces or a comment may follow the separator on its line.
func firstYAMLDocument(data []byte) ([]byte, error) {
	r := bufio.NewReader(bytes.NewReader(data))
	var doc bytes.Buffer
	for {
		line, err := readLine(r)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if bytes.HasPrefix(line, []byte("---")) {
			trimmed := strings.TrimSpace(string(line[3:]))
			if trimmed != "" && trimmed[0] != '#' {
				return nil, fmt.Errorf("invalid YAML document separator: %s", trimmed)
			}
			if doc.Len() != 0 {
				return doc.Bytes(), nil
			}
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
		}
		if errors.Is(err, io.EOF) {
			return doc.Bytes(), nil
		}
		doc.Write(line)
	}
}

// readLine returns one line with its line ending normalised to "\n", as
// apimachinery's LineReader does.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, isPrefix, err := r.ReadLine()
		line = append(line, part...)
		if err != nil || !isPrefix {
			return append(line, '\n'), err
		}
	}
}

// object is a Kubernetes manifest held the way apimachinery's Unstructured
// holds it: a JSON object whose integers are int64 and other numbers
// float64, which must have a kind.
type object struct {
	m map[string]any
}

// UnmarshalJSON follows unstructured.Unstructured: numbers that fit int64
// stay integers, and an object without a kind is an error.
func (o *object) UnmarshalJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return err
	}
	if err := convertNumbers(m); err != nil {
		return err
	}
	if kind, _ := m["kind"].(string); kind == "" {
		return fmt.Errorf("object 'Kind' is missing in '%s'", b)
	}
	o.m = m
	return nil
}

// convertNumbers replaces json.Number values in v (a map or slice, walked
// recursively) with int64 when they parse as one, else float64.
func convertNumbers(v any) error {
	convert := func(x any) (any, error) {
		switch t := x.(type) {
		case json.Number:
			if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
				return i, nil
			}
			return t.Float64()
		case map[string]any, []any:
			return x, convertNumbers(t)
		}
		return x, nil
	}
	var err error
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if t[k], err = convert(x); err != nil {
				return err
			}
		}
	case []any:
		for i, x := range t {
			if t[i], err = convert(x); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o *object) kind() string { s, _ := o.m["kind"].(string); return s }

func (o *object) apiVersion() string { s, _ := o.m["apiVersion"].(string); return s }

// name is metadata.name, or "" when it is missing or not a string.
func (o *object) name() string {
	md, _ := o.m["metadata"].(map[string]any)
	s, _ := md["name"].(string)
	return s
}

// groupVersion splits apiVersion as schema.ParseGroupVersion does for a
// well-formed value: "group/version", or a bare "version" of the core group.
func (o *object) groupVersion() (group, version string) {
	av := o.apiVersion()
	if g, v, ok := strings.Cut(av, "/"); ok {
		return g, v
	}
	return "", av
}

// marshal encodes the object as json.Marshal encodes an Unstructured: keys
// sorted, HTML characters escaped. These are the bytes opm stores in
// olm.bundle.object properties.
func (o *object) marshal() ([]byte, error) { return json.Marshal(o.m) }

// marshalNoEscape encodes v compactly without escaping HTML characters, as
// operator-registry's property.Build does.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, buf.Bytes()); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
