package fbc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A tree is one parsed document (YAML or JSON) held in flat slices so that a
// worker can parse thousands of documents with a handful of allocations:
// nodes live in one slice, decoded text in one byte buffer, and undecoded
// text is referenced straight from the source bytes. Nothing in a tree may
// outlive the next reset; callers copy out what they keep.
type tree struct {
	src   []byte   // the document being parsed (source 1)
	extra [][]byte // further sources (2, 3, ...) when one tree spans several inputs
	buf   []byte   // decoded text (escapes, folded lines, canonical numbers): source 0
	nodes []node
	stack []int32 // scratch for sorting map members
}

type kind uint8

const (
	kindNull kind = iota
	kindFalse
	kindTrue
	kindNumber // text is a canonical JSON number
	kindString
	kindMap
	kindSeq
)

// span is a byte range of one of the tree's sources: 0 is tree.buf, 1
// tree.src, 2 and up tree.extra.
type span struct {
	off, end int32
	src      int32
}

type node struct {
	kind  kind
	key   span // set when the node is a map member
	text  span // scalar text
	first int32
	last  int32
	next  int32
	n     int32 // number of children
}

func (t *tree) reset(src []byte) {
	t.src = src
	clear(t.extra)
	t.extra = t.extra[:0]
	t.buf = t.buf[:0]
	t.nodes = t.nodes[:0]
}

// addSource registers another input and returns its source number.
func (t *tree) addSource(b []byte) int32 {
	t.extra = append(t.extra, b)
	return int32(len(t.extra) + 1)
}

func (t *tree) add(k kind) int32 {
	t.nodes = append(t.nodes, node{kind: k, first: -1, last: -1, next: -1})
	return int32(len(t.nodes) - 1)
}

func (t *tree) addChild(parent, child int32) {
	p := &t.nodes[parent]
	if p.last < 0 {
		p.first = child
	} else {
		t.nodes[p.last].next = child
	}
	p.last = child
	p.n++
}

func (t *tree) bytes(s span) []byte {
	switch s.src {
	case 0:
		return t.buf[s.off:s.end]
	case 1:
		return t.src[s.off:s.end]
	}
	return t.extra[s.src-2][s.off:s.end]
}

func (t *tree) text(i int32) []byte { return t.bytes(t.nodes[i].text) }
func (t *tree) key(i int32) []byte  { return t.bytes(t.nodes[i].key) }

// str returns a node's text as a Go string, with invalid UTF-8 replaced the
// way encoding/json does when it decodes a string.
func (t *tree) str(i int32) string { return validString(t.text(i)) }

func srcSpan(off, end int) span { return span{off: int32(off), end: int32(end), src: 1} }

// bufSpan returns the span of t.buf from start to its end.
func (t *tree) bufSpan(start int) span {
	return span{off: int32(start), end: int32(len(t.buf))}
}

// addString appends s to t.buf and returns its span.
func (t *tree) addString(s string) span {
	start := len(t.buf)
	t.buf = append(t.buf, s...)
	return t.bufSpan(start)
}

// validString converts b to a string, replacing each invalid UTF-8 byte with
// U+FFFD like encoding/json.
func validString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return string(out)
}

// ---------------------------------------------------------------------------
// Canonical JSON.
//
// opm decodes every blob into map[string]any and encodes it again (declcfg
// Meta.UnmarshalJSON) before anything else looks at it, so the JSON it keeps
// is compact, has object keys sorted bytewise, numbers as float64 formatted by
// encoding/json and strings escaped by encoding/json without HTML escaping.
// appendCanonical produces exactly those bytes, so raw values loaded by Ferry
// equal the ones opm would hold.

// appendCanonical appends the canonical JSON of node i.
func (t *tree) appendCanonical(dst []byte, i int32) []byte {
	n := &t.nodes[i]
	switch n.kind {
	case kindNull:
		return append(dst, "null"...)
	case kindFalse:
		return append(dst, "false"...)
	case kindTrue:
		return append(dst, "true"...)
	case kindNumber:
		return append(dst, t.bytes(n.text)...)
	case kindString:
		return appendJSONString(dst, t.bytes(n.text))
	case kindSeq:
		dst = append(dst, '[')
		for c := n.first; c >= 0; c = t.nodes[c].next {
			if c != n.first {
				dst = append(dst, ',')
			}
			dst = t.appendCanonical(dst, c)
		}
		return append(dst, ']')
	case kindMap:
		dst = append(dst, '{')
		members := t.sortedMembers(i)
		for j, c := range members {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, t.key(c))
			dst = append(dst, ':')
			dst = t.appendCanonical(dst, c)
		}
		t.stack = t.stack[:len(t.stack)-len(members)]
		return append(dst, '}')
	}
	panic("fbc: unknown node kind")
}

// sortedMembers pushes map i's members onto t.stack in canonical order
// (bytewise by key, the last of duplicate keys winning, as when decoding into
// a Go map) and returns that part of the stack; the caller pops it.
func (t *tree) sortedMembers(i int32) []int32 {
	base := len(t.stack)
	sorted := true
	var prev []byte
	for c := t.nodes[i].first; c >= 0; c = t.nodes[c].next {
		k := t.key(c)
		if len(t.stack) > base && bytes.Compare(prev, k) >= 0 {
			sorted = false
		}
		prev = k
		t.stack = append(t.stack, c)
	}
	members := t.stack[base:]
	if sorted {
		return members
	}
	slices.SortStableFunc(members, func(a, b int32) int { return bytes.Compare(t.key(a), t.key(b)) })
	// Keep the last of each run of equal keys.
	out := members[:0]
	for j, c := range members {
		if j+1 < len(members) && bytes.Equal(t.key(c), t.key(members[j+1])) {
			continue
		}
		out = append(out, c)
	}
	t.stack = t.stack[:base+len(out)]
	return t.stack[base:]
}

// lookup returns the member of map i whose key is exactly k (the last one if
// repeated), or -1.
func (t *tree) lookup(i int32, k string) int32 {
	found := int32(-1)
	for c := t.nodes[i].first; c >= 0; c = t.nodes[c].next {
		if string(t.key(c)) == k {
			found = c
		}
	}
	return found
}

const hexDigits = "0123456789abcdef"

// safeJSON marks the ASCII bytes encoding/json copies unchanged.
var safeJSON = func() (s [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		s[c] = c != '"' && c != '\\'
	}
	return s
}()

// appendJSONString appends s as a JSON string exactly as encoding/json does
// with SetEscapeHTML(false).
func appendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && jsonSafe8(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if safeJSON[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendJSONFloat formats f as encoding/json formats a float64.
func appendJSONFloat(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// shortInt reports whether a JSON number literal is an integer of at most 15
// digits: float64 holds it exactly and encoding/json prints it unchanged.
func shortInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 15 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// addNumber adds a number node for a valid JSON number literal, canonicalised
// through float64 like opm's map[string]any round trip.
func (t *tree) addNumber(lit []byte) (int32, error) {
	i := t.add(kindNumber)
	start := len(t.buf)
	if shortInt(lit) {
		t.buf = append(t.buf, lit...)
	} else {
		f, err := strconv.ParseFloat(string(lit), 64)
		if err != nil {
			return -1, fmt.Errorf("number %s out of range", lit)
		}
		t.buf = appendJSONFloat(t.buf, f)
	}
	t.nodes[i].text = t.bufSpan(start)
	return i, nil
}

// ---------------------------------------------------------------------------
// JSON parsing.

// jsonParser parses JSON values into a tree. It accepts what encoding/json
// accepts (including invalid UTF-8 inside strings, decoded to U+FFFD later).
type jsonParser struct {
	t     *tree
	src   []byte
	srcID int32 // the tree's source number for src (1 unless set)
	pos   int
	depth int
	// yamlView parses raw JSON the way the writer needs it, as yaml.v2
	// will read it: number literals are kept as written (not canonicalised
	// through float64), and the escapes yaml.v2 rejects (\/ and UTF-16
	// surrogates) are errors.
	yamlView bool
}

// jsonSyntaxError is a JSON syntax error at a byte offset.
type jsonSyntaxError struct {
	msg string
	off int
}

func (e *jsonSyntaxError) Error() string { return e.msg }

func (p *jsonParser) fail(msg string) error {
	return &jsonSyntaxError{msg: msg, off: p.pos}
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.src) && isJSONSpace(p.src[p.pos]) {
		p.pos++
	}
}

const maxDepth = 10000 // encoding/json's nesting limit

// value parses one JSON value at p.pos.
func (p *jsonParser) value() (int32, error) {
	p.skipSpace()
	if p.pos >= len(p.src) {
		return -1, p.fail("unexpected end of JSON input")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.string()
		if err != nil {
			return -1, err
		}
		i := p.t.add(kindString)
		p.t.nodes[i].text = s
		return i, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", kindTrue)
	case c == 'f':
		return p.literal("false", kindFalse)
	case c == 'n':
		return p.literal("null", kindNull)
	default:
		return -1, p.fail(fmt.Sprintf("invalid character %q looking for beginning of value", c))
	}
}

func (p *jsonParser) literal(lit string, k kind) (int32, error) {
	if !bytes.HasPrefix(p.src[p.pos:], []byte(lit)) {
		return -1, p.fail("invalid literal")
	}
	p.pos += len(lit)
	return p.t.add(k), nil
}

func (p *jsonParser) object() (int32, error) {
	if p.depth++; p.depth > maxDepth {
		return -1, p.fail("exceeded max depth")
	}
	defer func() { p.depth-- }()
	obj := p.t.add(kindMap)
	p.pos++ // {
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return obj, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return -1, p.fail("expected string for object key")
		}
		k, err := p.string()
		if err != nil {
			return -1, err
		}
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return -1, p.fail("expected ':' after object key")
		}
		p.pos++
		v, err := p.value()
		if err != nil {
			return -1, err
		}
		p.t.nodes[v].key = k
		p.t.addChild(obj, v)
		p.skipSpace()
		if p.pos >= len(p.src) {
			return -1, p.fail("unexpected end of JSON input")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return obj, nil
		default:
			return -1, p.fail("expected ',' or '}' after object value")
		}
	}
}

func (p *jsonParser) array() (int32, error) {
	if p.depth++; p.depth > maxDepth {
		return -1, p.fail("exceeded max depth")
	}
	defer func() { p.depth-- }()
	arr := p.t.add(kindSeq)
	p.pos++ // [
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		return arr, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return -1, err
		}
		p.t.addChild(arr, v)
		p.skipSpace()
		if p.pos >= len(p.src) {
			return -1, p.fail("unexpected end of JSON input")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return arr, nil
		default:
			return -1, p.fail("expected ',' or ']' after array element")
		}
	}
}

func (p *jsonParser) number() (int32, error) {
	start := p.pos
	s := p.src
	i := p.pos
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return -1, p.fail("invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			p.pos = i
			return -1, p.fail("invalid number")
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			p.pos = i
			return -1, p.fail("invalid number")
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	p.pos = i
	if p.yamlView {
		n := p.t.add(kindNumber)
		p.t.nodes[n].text = span{off: int32(start), end: int32(i), src: p.srcID}
		return n, nil
	}
	n, err := p.t.addNumber(s[start:i])
	if err != nil {
		p.pos = start
		return -1, p.fail(err.Error())
	}
	return n, nil
}

// string parses a JSON string at p.pos and returns its decoded text: a span
// of the source when it has no escapes, else of the decoded-text buffer.
func (p *jsonParser) string() (span, error) {
	s := p.src
	p.pos++ // opening quote
	start := p.pos
	i := start
	for i < len(s) {
		c := s[i]
		if c == '"' {
			p.pos = i + 1
			return span{off: int32(start), end: int32(i), src: p.srcID}, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			p.pos = i
			return span{}, p.fail("invalid control character in string literal")
		}
		i++
	}
	if i >= len(s) {
		p.pos = i
		return span{}, p.fail("unexpected end of JSON input")
	}
	// Slow path: decode escapes into buf.
	t := p.t
	bstart := len(t.buf)
	t.buf = append(t.buf, s[start:i]...)
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return t.bufSpan(bstart), nil
		case c < 0x20:
			p.pos = i
			return span{}, p.fail("invalid control character in string literal")
		case c != '\\':
			t.buf = append(t.buf, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			break
		}
		e := s[i+1]
		i += 2
		switch e {
		case '/':
			if p.yamlView {
				p.pos = i - 2
				return span{}, p.fail("yaml.v2 does not read the \\/ escape")
			}
			t.buf = append(t.buf, e)
		case '"', '\\':
			t.buf = append(t.buf, e)
		case 'b':
			t.buf = append(t.buf, '\b')
		case 'f':
			t.buf = append(t.buf, '\f')
		case 'n':
			t.buf = append(t.buf, '\n')
		case 'r':
			t.buf = append(t.buf, '\r')
		case 't':
			t.buf = append(t.buf, '\t')
		case 'u':
			r, ok := hex4(s, i)
			if !ok {
				p.pos = i
				return span{}, p.fail("invalid \\u escape in string literal")
			}
			i += 4
			if utf16.IsSurrogate(r) && p.yamlView {
				p.pos = i - 6
				return span{}, p.fail("yaml.v2 does not read UTF-16 surrogate escapes")
			}
			if utf16.IsSurrogate(r) {
				// A valid pair makes one rune; anything else is U+FFFD,
				// as encoding/json decodes it.
				if r2, ok := hex4(s, i+2); ok && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						i += 6
						t.buf = utf8.AppendRune(t.buf, dec)
						continue
					}
				}
				r = utf8.RuneError
			}
			t.buf = utf8.AppendRune(t.buf, r)
		default:
			p.pos = i - 1
			return span{}, p.fail("invalid escape character in string literal")
		}
	}
	p.pos = len(s)
	return span{}, p.fail("unexpected end of JSON input")
}

func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// parseJSON parses src as exactly one JSON value (surrounding whitespace
// allowed) into t, which it resets.
func parseJSON(t *tree, src []byte) (int32, error) {
	t.reset(src)
	p := jsonParser{t: t, src: src, srcID: 1}
	root, err := p.value()
	if err != nil {
		return -1, err
	}
	p.skipSpace()
	if p.pos != len(src) {
		return -1, p.fail("invalid character after top-level value")
	}
	return root, nil
}
