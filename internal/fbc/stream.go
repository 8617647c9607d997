package fbc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode"
)

// docStream reads a catalog file one document at a time through a window
// that grows to the largest document (not the file), so a worker's memory
// does not depend on how big catalog files are.
type docStream struct {
	r        io.Reader
	buf      []byte
	off, end int // buf[off:end] is read and not yet consumed
	eof      bool
	err      error
	line     int // lines consumed before buf[off]
}

func (s *docStream) reset(r io.Reader, buf []byte) {
	*s = docStream{r: r, buf: buf[:cap(buf)]}
	if len(s.buf) < 64<<10 {
		s.buf = make([]byte, 64<<10)
	}
}

// more reads more input, first moving the unconsumed bytes to the front of
// the window (or growing it). It returns by how much positions in buf moved
// down, and whether any input was added.
func (s *docStream) more() (shift int, ok bool) {
	if s.eof || s.err != nil {
		return 0, false
	}
	if s.off > 0 {
		shift = s.off
		copy(s.buf, s.buf[s.off:s.end])
		s.end -= s.off
		s.off = 0
	}
	if s.end == len(s.buf) {
		grown := make([]byte, 2*len(s.buf))
		copy(grown, s.buf[:s.end])
		s.buf = grown
	}
	for {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err == io.EOF {
			s.eof = true
		} else if err != nil {
			s.err = err
		}
		if n > 0 || s.eof || s.err != nil {
			return shift, n > 0
		}
	}
}

// parseStream decodes a whole file the way opm's declcfg does (through
// k8s.io/apimachinery's YAMLOrJSONDecoder): a file whose first non-space
// character is '{' is a stream of JSON values, anything else a stream of
// YAML documents separated by "---" lines. Blobs are added to out in order.
func (d *decoder) parseStream(s *docStream, out *blobs) *docError {
	for s.end-s.off < 4096 {
		if _, ok := s.more(); !ok {
			break
		}
	}
	if s.err != nil {
		return &docError{err: s.err}
	}
	if looksJSON(s.buf[s.off:s.end]) {
		return d.jsonStream(s, out)
	}
	return d.yamlStream(s, out)
}

// looksJSON is apimachinery's GuessJSONStream: it peeks at 4096 bytes.
func looksJSON(data []byte) bool {
	peek := data[:min(len(data), 4096)]
	return bytes.HasPrefix(bytes.TrimLeftFunc(peek, unicode.IsSpace), []byte("{"))
}

func lineOf(data []byte, off int) int {
	return bytes.Count(data[:min(off, len(data))], []byte("\n")) + 1
}

// yamlStream splits the input into documents exactly like apimachinery's
// YAMLReader (a line starting with "---" ends a document; only spaces or a
// comment may follow it) and decodes each.
func (d *decoder) yamlStream(s *docStream, out *blobs) *docError {
	docLine := s.line + 1 // line the current document starts on
	line := s.line        // lines scanned
	scan := s.off         // start of the next line to look at
	for {
		e := bytes.IndexByte(s.buf[scan:s.end], '\n')
		if e < 0 && !s.eof && s.err == nil {
			shift, _ := s.more()
			scan -= shift
			continue
		}
		if s.err != nil {
			return &docError{line: line + 1, err: s.err}
		}
		next := s.end
		if e >= 0 {
			next = scan + e + 1
		}
		if scan == next { // end of input
			break
		}
		line++
		if bytes.HasPrefix(s.buf[scan:next], []byte("---")) {
			rest := bytes.TrimSpace(s.buf[scan+3 : next])
			if len(rest) > 0 && rest[0] != '#' {
				return &docError{line: line, err: fmt.Errorf("invalid YAML document separator: %s", rest)}
			}
			if scan > s.off {
				if err := d.yamlDoc(s.buf[s.off:scan], docLine, out); err != nil {
					return err
				}
			}
			s.off, docLine = next, line+1
		}
		scan = next
	}
	if s.end > s.off {
		if err := d.yamlDoc(s.buf[s.off:s.end], docLine, out); err != nil {
			return err
		}
	}
	s.off = s.end
	return nil
}

// jsonStream decodes a stream of JSON values. Like apimachinery, a stream
// that fails after at most one value is retried as YAML from there on (so a
// JSON object followed by YAML documents loads).
func (d *decoder) jsonStream(s *docStream, out *blobs) *docError {
	count := 0
	for {
		// Skip white space, counting lines; s.off stays at the end of the
		// last value for the YAML retry.
		i := s.off
		lines := 0
		for {
			for i < s.end && isJSONSpace(s.buf[i]) {
				if s.buf[i] == '\n' {
					lines++
				}
				i++
			}
			if i < s.end {
				break
			}
			shift, ok := s.more()
			i -= shift
			if !ok {
				break
			}
		}
		if s.err != nil {
			return &docError{line: s.line + lines + 1, err: s.err}
		}
		if i >= s.end {
			return nil
		}
		start, end := s.valueEnd(i)
		value := s.buf[start:end]
		line := s.line + lines + 1

		d.t.reset(value)
		p := jsonParser{t: &d.t, src: value, srcID: 1}
		root, err := p.value()
		if err == nil {
			p.skipSpace()
			if p.pos != len(value) {
				err = p.fail("invalid character after top-level value")
			}
		}
		if err == nil && d.t.nodes[root].kind != kindMap && d.t.nodes[root].kind != kindNull {
			err = fmt.Errorf("cannot decode %s into a blob", d.t.describe(root))
		}
		if err != nil {
			errLine := line
			var se *jsonSyntaxError
			if errors.As(err, &se) {
				errLine = line + lineOf(value, se.off) - 1
			}
			jerr := &docError{line: errLine, err: err}
			if count > 1 {
				return jerr
			}
			return d.retryAsYAML(s, out, jerr)
		}
		if err := d.decodeDoc(root, out); err != nil {
			return &docError{line: line, err: err}
		}
		count++
		s.line += lines + bytes.Count(value, []byte("\n"))
		s.off = end
	}
}

// valueEnd finds the end of the JSON value starting at buf[start], reading
// more input as needed: the matching bracket of an object or array, or the
// end of a scalar token. An unterminated value ends at the end of input.
// Positions are returned for the window after any reads.
func (s *docStream) valueEnd(start int) (int, int) {
	i := start
	depth := 0
	inString, escaped := false, false
	scalar := s.buf[start] != '{' && s.buf[start] != '['
	for {
		if i == s.end {
			shift, ok := s.more()
			i -= shift
			start -= shift
			if !ok {
				return start, s.end
			}
		}
		c := s.buf[i]
		i++
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
				if scalar {
					return start, i
				}
			}
		case c == '"':
			if scalar && i-1 != start {
				return start, i - 1
			}
			inString = true
		case scalar:
			if isJSONSpace(c) || c == '{' || c == '[' || c == '}' || c == ']' || c == ',' || c == ':' {
				return start, i - 1
			}
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				return start, i
			}
		}
	}
}

// retryAsYAML decodes the rest of a JSON stream, from the end of the last
// good value, as YAML; if that fails too, the JSON error stands.
func (d *decoder) retryAsYAML(s *docStream, out *blobs, jerr *docError) *docError {
	for {
		if _, ok := s.more(); !ok {
			break
		}
	}
	rest := bytes.Clone(s.buf[s.off:s.end])
	from := skipSpaceThroughNewline(rest, 0)
	var ys docStream
	ys.reset(bytes.NewReader(rest[from:]), nil)
	ys.line = s.line + bytes.Count(rest[:from], []byte("\n"))
	var yout blobs
	if err := d.parseYAMLOnly(&ys, &yout); err != nil {
		return jerr
	}
	out.add(&yout)
	return nil
}

func (d *decoder) parseYAMLOnly(s *docStream, out *blobs) *docError {
	return d.yamlStream(s, out)
}

// parseBytes decodes a file held in memory.
func (d *decoder) parseBytes(data []byte, out *blobs) *docError {
	var s docStream
	s.reset(bytes.NewReader(data), nil)
	return d.parseStream(&s, out)
}
