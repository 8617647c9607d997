package fbc

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	sigsyaml "sigs.k8s.io/yaml"
)

// ParseError is a problem in one catalog file.
type ParseError struct {
	File string // path inside the loaded fs.FS
	Line int    // 1-based; 0 when unknown
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// skipSpaceThroughNewline skips white space from off up to and including the
// first newline, as apimachinery does before switching a stream to YAML.
func skipSpaceThroughNewline(data []byte, off int) int {
	for off < len(data) {
		r, size := utf8.DecodeRune(data[off:])
		if !unicode.IsSpace(r) {
			return off
		}
		off += size
		if r == '\n' {
			return off
		}
	}
	return off
}

// yamlDoc decodes one YAML document that starts on line docLine.
func (d *decoder) yamlDoc(doc []byte, docLine int, out *blobs) *docError {
	root, err := parseYAMLFast(&d.t, doc)
	if err == errSlow {
		slowDocs.Add(1)
		root, err = d.slowYAML(doc)
	}
	if err != nil {
		return yamlError(err, docLine)
	}
	if err := d.decodeDoc(root, out); err != nil {
		return &docError{line: docLine, err: err}
	}
	return nil
}

// slowYAML is the reference decoder: the same sigs.k8s.io/yaml (yaml.v2)
// conversion opm applies, then the JSON parser.
func (d *decoder) slowYAML(doc []byte) (int32, error) {
	j, err := sigsyaml.YAMLToJSON(doc)
	if err != nil {
		return -1, err
	}
	return parseJSON(&d.t, j)
}

// slowDocs counts documents decoded by the reference decoder (for tests and
// benchmarks: it should stay near zero on real catalogs).
var slowDocs atomic.Int64

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a yaml.v2 error, whose line numbers count from the start
// of the document, into one that counts from the start of the file.
func yamlError(err error, docLine int) *docError {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			return &docError{line: docLine + n - 1, err: errors.New("yaml: " + m[2])}
		}
	}
	return &docError{line: docLine, err: err}
}

func (b *blobs) add(o *blobs) {
	b.Packages = append(b.Packages, o.Packages...)
	b.Channels = append(b.Channels, o.Channels...)
	b.Bundles = append(b.Bundles, o.Bundles...)
	b.Deprecations = append(b.Deprecations, o.Deprecations...)
	b.Others = append(b.Others, o.Others...)
}
