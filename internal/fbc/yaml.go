package fbc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// This file is the fast path of loading: a parser for the block-style YAML
// that opm (through sigs.k8s.io/yaml and yaml.v2) writes and that people
// write by hand — block mappings and sequences, plain, quoted and literal
// scalars, comments. It produces exactly the values yaml.v2 would, after the
// same JSON round trip opm applies. Anything outside that subset (anchors,
// tags, flow collections, folded scalars, tabs, CRLF, odd indentation, ...)
// makes it give up with errSlow, and the document is decoded by the
// reference decoder instead (slow.go), so the fast path never has to
// reproduce an error message or a corner of the YAML spec.

// errSlow asks for the reference decoder.
var errSlow = errors.New("fbc: document needs the reference YAML decoder")

type yamlParser struct {
	t     *tree
	src   []byte
	pos   int // start of the next unconsumed line
	depth int // nesting of collections, bounded so recursion is too

	// the last plainKeyEnd answer (isKey and mapKey ask twice)
	keyAt    int // position + 1, so that the zero value matches nothing
	keyColon int
	keyOK    bool
}

// maxYAMLDepth bounds nesting on the fast path; deeper documents go to the
// reference decoder, which has its own limit.
const maxYAMLDepth = 1000

// parseYAMLFast parses one YAML document (the bytes between "---" lines) into
// t. It returns errSlow when the document is outside the fast subset; a root
// that is not a mapping also takes the slow path so that errors come from
// the reference decoder.
func parseYAMLFast(t *tree, src []byte) (int32, error) {
	if !fastBytes(src) {
		return -1, errSlow
	}
	t.reset(src)
	y := yamlParser{t: t, src: src}
	ls, col, ok := y.nextContent(0)
	if !ok {
		return -1, errSlow
	}
	p := ls + col
	if y.dash(p) || !y.isKey(p) {
		return -1, errSlow
	}
	root, err := y.blockMap(p, col)
	if err != nil {
		return -1, err
	}
	if _, _, ok := y.nextContent(y.pos); ok {
		return -1, errSlow
	}
	return root, nil
}

// fastBytes reports whether src contains only characters the fast path
// handles: printable ASCII, newline and valid UTF-8 that yaml.v2 reads as
// ordinary printable characters (no tab, CR, BOM, NEL, LS, PS, C1 controls or
// non-characters).
func fastBytes(src []byte) bool {
	for i := 0; i < len(src); {
		if i+8 <= len(src) && printable8(binary.LittleEndian.Uint64(src[i:])) {
			i += 8
			continue
		}
		c := src[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\n') || c == 0x7F {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if r < 0xA0 || r == 0x2028 || r == 0x2029 || r == 0xFEFF || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += size
	}
	return true
}

func (y *yamlParser) lineEnd(p int) int {
	if i := bytes.IndexByte(y.src[p:], '\n'); i >= 0 {
		return p + i
	}
	return len(y.src)
}

// nextLine returns the start of the line after the one holding p.
func (y *yamlParser) nextLine(p int) int {
	e := y.lineEnd(p)
	if e < len(y.src) {
		return e + 1
	}
	return e
}

func (y *yamlParser) lineStart(p int) int {
	return bytes.LastIndexByte(y.src[:p], '\n') + 1
}

// nextContent finds, from line start p, the first line that is neither blank
// nor a comment, and returns its start and the column of its first
// character. ok is false at the end of the document.
func (y *yamlParser) nextContent(p int) (ls, col int, ok bool) {
	s := y.src
	for p < len(s) {
		i := p
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i == len(s) {
			return len(s), 0, false
		}
		switch s[i] {
		case '\n':
			p = i + 1
			continue
		case '#':
			p = y.nextLine(i)
			continue
		}
		return p, i - p, true
	}
	return len(s), 0, false
}

// dash reports whether a block sequence entry indicator ("-" followed by a
// space or the end of the line) starts at p.
func (y *yamlParser) dash(p int) bool {
	s := y.src
	return p < len(s) && s[p] == '-' && (p+1 == len(s) || s[p+1] == ' ' || s[p+1] == '\n')
}

// isKey reports whether the content at p is a mapping key followed by ": "
// (or ":" at the end of the line) on the same line.
func (y *yamlParser) isKey(p int) bool {
	s := y.src
	switch s[p] {
	case '"', '\'':
		_, end, err := y.quoted(p, -1, true)
		if err != nil {
			return false
		}
		i := end
		for i < len(s) && s[i] == ' ' {
			i++
		}
		return i < len(s) && s[i] == ':' && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\n')
	}
	_, ok := y.plainKeyEnd(p)
	return ok
}

// plainKeyEnd finds the ':' that ends a plain key starting at p: the first
// ':' followed by a space or the end of the line, unless a comment (" #")
// starts before it.
func (y *yamlParser) plainKeyEnd(p int) (int, bool) {
	if y.keyAt == p+1 {
		return y.keyColon, y.keyOK
	}
	colon, ok := y.findKeyEnd(p)
	y.keyAt, y.keyColon, y.keyOK = p+1, colon, ok
	return colon, ok
}

func (y *yamlParser) findKeyEnd(p int) (int, bool) {
	line := y.src[p:y.lineEnd(p)]
	for off := 0; ; {
		j := bytes.IndexByte(line[off:], ':')
		if j < 0 {
			return 0, false
		}
		c := off + j
		if h := bytes.Index(line[off:c], []byte(" #")); h >= 0 {
			return 0, false
		}
		if c+1 == len(line) || line[c+1] == ' ' {
			return p + c, true
		}
		off = c + 1
	}
}

// isDocumentEnd reports a "..." document end marker (at the start of a
// line, followed by a space or the end of the line).
func isDocumentEnd(s []byte, p int) bool {
	return (p == 0 || s[p-1] == '\n') && bytes.HasPrefix(s[p:], []byte("...")) &&
		(p+3 == len(s) || s[p+3] == ' ' || s[p+3] == '\n')
}

// indicators that may not start a plain scalar (or that the fast path leaves
// to the reference decoder).
var plainStartSlow = func() (t [256]bool) {
	for _, c := range "-?:,[]{}#&*!|>'\"%@`" {
		t[c] = true
	}
	return t
}()

// blockMap parses a block mapping whose first key starts at p, in column col.
func (y *yamlParser) blockMap(p, col int) (int32, error) {
	if y.depth++; y.depth > maxYAMLDepth {
		return -1, errSlow
	}
	defer func() { y.depth-- }()
	t := y.t
	m := t.add(kindMap)
	for {
		key, after, err := y.mapKey(p)
		if err != nil {
			return -1, err
		}
		v, err := y.value(after, col, false)
		if err != nil {
			return -1, err
		}
		t.nodes[v].key = key
		t.addChild(m, v)

		ls, c, ok := y.nextContent(y.pos)
		if !ok || c < col {
			y.pos = ls
			return m, nil
		}
		if c > col {
			return -1, errSlow
		}
		p = ls + c
		if y.dash(p) {
			return -1, errSlow
		}
	}
}

// mapKey parses the key at p and returns it with the position after ':'.
func (y *yamlParser) mapKey(p int) (span, int, error) {
	s := y.src
	if c := s[p]; c == '"' || c == '\'' {
		k, end, err := y.quoted(p, -1, true)
		if err != nil {
			return span{}, 0, err
		}
		for end < len(s) && s[end] == ' ' {
			end++
		}
		if end >= len(s) || s[end] != ':' || end-p > 1000 {
			return span{}, 0, errSlow
		}
		if end+1 < len(s) && s[end+1] != ' ' && s[end+1] != '\n' {
			return span{}, 0, errSlow // in block context ':' must be followed by a space
		}
		return k, end + 1, nil
	}
	if plainStartSlow[s[p]] {
		return span{}, 0, errSlow
	}
	if isDocumentEnd(s, p) {
		return span{}, 0, errSlow
	}
	colon, ok := y.plainKeyEnd(p)
	if !ok {
		return span{}, 0, errSlow
	}
	end := colon
	for end > p && s[end-1] == ' ' {
		end--
	}
	// yaml.v2 turns keys that resolve to other types into strings its own
	// way, refuses simple keys longer than 1024 characters up to the ':'
	// and gives "<<" merge semantics.
	if colon-p > 1000 || end == p {
		return span{}, 0, errSlow
	}
	k := s[p:end]
	if string(k) == "<<" {
		return span{}, 0, errSlow
	}
	if kd, _, ok := resolvePlain(k); !ok || kd != kindString {
		return span{}, 0, errSlow
	}
	return srcSpan(p, end), colon + 1, nil
}

// value parses the node after a mapping key's ':' or a sequence entry's
// '-' at position p. n is the indentation of the enclosing collection.
func (y *yamlParser) value(p, n int, seqItem bool) (int32, error) {
	s := y.src
	q := p
	for q < len(s) && s[q] == ' ' {
		q++
	}
	if q == len(s) || s[q] == '\n' || s[q] == '#' {
		// The value, if any, starts on a later line.
		next := y.nextLine(q)
		ls, c, ok := y.nextContent(next)
		switch {
		case ok && c > n:
			return y.blockNode(ls, c, n)
		case ok && c == n && !seqItem && y.dash(ls+c):
			return y.blockSeq(ls+c, c) // an indentless sequence
		}
		y.pos = next
		return y.t.add(kindNull), nil
	}
	col := q - y.lineStart(q)
	if y.dash(q) {
		if !seqItem {
			return -1, errSlow
		}
		return y.blockSeq(q, col)
	}
	if y.isKey(q) {
		if !seqItem {
			return -1, errSlow
		}
		return y.blockMap(q, col)
	}
	return y.scalar(q, n)
}

// blockNode parses a node that starts a line, at column c.
func (y *yamlParser) blockNode(ls, c, n int) (int32, error) {
	p := ls + c
	if y.dash(p) {
		return y.blockSeq(p, c)
	}
	if y.isKey(p) {
		return y.blockMap(p, c)
	}
	return y.scalar(p, n)
}

// blockSeq parses a block sequence whose first '-' is at p, in column col.
func (y *yamlParser) blockSeq(p, col int) (int32, error) {
	if y.depth++; y.depth > maxYAMLDepth {
		return -1, errSlow
	}
	defer func() { y.depth-- }()
	t := y.t
	sq := t.add(kindSeq)
	for {
		v, err := y.value(p+1, col, true)
		if err != nil {
			return -1, err
		}
		t.addChild(sq, v)
		ls, c, ok := y.nextContent(y.pos)
		if !ok || c < col {
			y.pos = ls
			return sq, nil
		}
		if c > col {
			return -1, errSlow
		}
		if !y.dash(ls + c) {
			y.pos = ls
			return sq, nil
		}
		p = ls + c
	}
}

// scalar parses a scalar starting at q; n is the enclosing collection's
// indentation, which continuation lines must exceed.
func (y *yamlParser) scalar(q, n int) (int32, error) {
	s := y.src
	t := y.t
	switch c := s[q]; c {
	case '"', '\'':
		text, end, err := y.quoted(q, n, false)
		if err != nil {
			return -1, err
		}
		if err := y.endOfLine(end); err != nil {
			return -1, err
		}
		i := t.add(kindString)
		t.nodes[i].text = text
		return i, nil
	case '|':
		return y.literal(q, n)
	case '[', '{':
		if q+1 < len(s) && s[q+1] == c+2 { // "[]" or "{}"
			if err := y.endOfLine(q + 2); err != nil {
				return -1, err
			}
			if c == '[' {
				return t.add(kindSeq), nil
			}
			return t.add(kindMap), nil
		}
		return -1, errSlow
	}
	if plainStartSlow[s[q]] {
		if s[q] != '-' { // "-x" is a plain scalar; "- " was handled before
			return -1, errSlow
		}
	}
	return y.plain(q, n)
}

// endOfLine checks that only spaces and a comment follow position p on its
// line and moves to the next line.
func (y *yamlParser) endOfLine(p int) error {
	s := y.src
	i := p
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i < len(s) && s[i] != '\n' && (s[i] != '#' || i == p) {
		return errSlow
	}
	y.pos = y.nextLine(i)
	return nil
}

// plainLine scans the plain-scalar text on one line from p: it returns the
// end of the text (trailing spaces trimmed) and whether a comment (" #")
// follows. A ':' followed by a space or the end of the line before any
// comment would make the line a mapping entry: errSlow.
func (y *yamlParser) plainLine(p int) (end int, comment bool, err error) {
	line := y.src[p:y.lineEnd(p)]
	limit := len(line)
	if h := bytes.Index(line, []byte(" #")); h >= 0 {
		limit, comment = h, true
	}
	for off := 0; off < limit; {
		j := bytes.IndexByte(line[off:limit], ':')
		if j < 0 {
			break
		}
		c := off + j
		if c+1 == len(line) || line[c+1] == ' ' {
			return 0, false, errSlow
		}
		off = c + 1
	}
	end = p + limit
	for end > p && y.src[end-1] == ' ' {
		end--
	}
	return end, comment, nil
}

// plain parses a plain scalar, folding continuation lines indented more
// than n.
func (y *yamlParser) plain(q, n int) (int32, error) {
	s := y.src
	t := y.t
	end, comment, err := y.plainLine(q)
	if err != nil {
		return -1, err
	}
	text := srcSpan(q, end)
	next := y.nextLine(end)
	if !comment {
		bufStart := -1
		for {
			// Count blank lines, then look at the next line with content.
			p := next
			blanks := 0
			var ls, c int
			for {
				ls = p
				i := p
				for i < len(s) && s[i] == ' ' {
					i++
				}
				c = i - ls
				if i < len(s) && s[i] == '\n' {
					blanks++
					p = i + 1
					continue
				}
				break
			}
			cs := ls + c
			if cs >= len(s) || c <= n || s[cs] == '#' {
				break
			}
			cend, ccomment, err := y.plainLine(cs)
			if err != nil {
				return -1, err
			}
			if ccomment {
				return -1, errSlow
			}
			if bufStart < 0 {
				bufStart = len(t.buf)
				t.buf = append(t.buf, s[q:end]...)
			}
			if blanks == 0 {
				t.buf = append(t.buf, ' ')
			}
			for ; blanks > 0; blanks-- {
				t.buf = append(t.buf, '\n')
			}
			t.buf = append(t.buf, s[cs:cend]...)
			next = y.nextLine(cend)
		}
		if bufStart >= 0 {
			text = t.bufSpan(bufStart)
		}
	}
	y.pos = next
	return y.addPlain(text)
}

// addPlain adds the node a plain scalar resolves to.
func (y *yamlParser) addPlain(text span) (int32, error) {
	t := y.t
	b := t.bytes(text)
	k, f, ok := resolvePlain(b)
	if !ok {
		return -1, errSlow
	}
	i := t.add(k)
	switch k {
	case kindString:
		t.nodes[i].text = text
	case kindNumber:
		start := len(t.buf)
		t.buf = appendJSONFloat(t.buf, f)
		t.nodes[i].text = t.bufSpan(start)
	}
	return i, nil
}

// quoted parses a single- or double-quoted scalar starting at q and returns
// its text and the position after the closing quote. With key set it must
// fit on one line; otherwise continuation lines must be indented more than
// n.
func (y *yamlParser) quoted(q, n int, key bool) (span, int, error) {
	s := y.src
	t := y.t
	double := s[q] == '"'
	quote := s[q]
	// Fast case: no escapes, no line break.
	i := q + 1
	for i < len(s) {
		c := s[i]
		if c == quote || c == '\n' || (double && c == '\\') {
			break
		}
		i++
	}
	if i < len(s) && s[i] == quote && !(!double && i+1 < len(s) && s[i+1] == '\'') {
		return srcSpan(q+1, i), i + 1, nil
	}

	// Decode from the start: spaces before a line break are dropped, so
	// the fast scan's prefix cannot be copied blindly.
	i = q + 1
	start := len(t.buf)
	var (
		whitespace     []byte // pending blanks inside a line
		leadingBreak   bool   // the line ended with an unescaped break
		trailingBreaks int    // empty lines after it
	)
	for {
		// Non-blank characters.
		leadingBlanks := false
		for i < len(s) && s[i] != ' ' && s[i] != '\n' {
			c := s[i]
			if !double && c == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					t.buf = append(t.buf, '\'')
					i += 2
					continue
				}
				break
			}
			if double && c == '"' {
				break
			}
			if double && c == '\\' {
				if i+1 < len(s) && s[i+1] == '\n' {
					if key || !y.indented(i+2, n) {
						return span{}, 0, errSlow
					}
					i += 2
					leadingBlanks = true
					leadingBreak = false
					break
				}
				var err error
				i, err = y.escape(i)
				if err != nil {
					return span{}, 0, err
				}
				continue
			}
			j := i + 1
			for j < len(s) && s[j] != ' ' && s[j] != '\n' && s[j] != quote && s[j] != '\\' {
				j++
			}
			t.buf = append(t.buf, s[i:j]...)
			i = j
		}
		if i >= len(s) {
			return span{}, 0, errSlow
		}
		if s[i] == quote {
			break
		}
		// Blanks and breaks.
		whitespace = whitespace[:0]
		for i < len(s) && (s[i] == ' ' || s[i] == '\n') {
			if s[i] == ' ' {
				if !leadingBlanks {
					whitespace = append(whitespace, ' ')
				}
				i++
				continue
			}
			if key {
				return span{}, 0, errSlow
			}
			if !leadingBlanks {
				whitespace = whitespace[:0]
				leadingBreak = true
				leadingBlanks = true
			} else {
				trailingBreaks++
			}
			i++
			if !y.indented(i, n) {
				return span{}, 0, errSlow
			}
		}
		if i >= len(s) {
			return span{}, 0, errSlow
		}
		if leadingBlanks {
			if leadingBreak && trailingBreaks == 0 {
				t.buf = append(t.buf, ' ')
			}
			for ; trailingBreaks > 0; trailingBreaks-- {
				t.buf = append(t.buf, '\n')
			}
			leadingBreak = false
		} else {
			t.buf = append(t.buf, whitespace...)
		}
	}
	return t.bufSpan(start), i + 1, nil
}

// indented reports whether the line starting at ls is blank or indented
// more than n (continuation lines of quoted scalars must be).
func (y *yamlParser) indented(ls, n int) bool {
	s := y.src
	j := ls
	for j < len(s) && s[j] == ' ' {
		j++
	}
	return j >= len(s) || s[j] == '\n' || j-ls > n
}

// escape decodes the double-quoted escape sequence at s[i] ('\\') into t.buf
// and returns the position after it.
func (y *yamlParser) escape(i int) (int, error) {
	s := y.src
	t := y.t
	if i+1 >= len(s) {
		return 0, errSlow
	}
	var code int
	switch s[i+1] {
	case '0':
		t.buf = append(t.buf, 0)
	case 'a':
		t.buf = append(t.buf, '\a')
	case 'b':
		t.buf = append(t.buf, '\b')
	case 't':
		t.buf = append(t.buf, '\t')
	case 'n':
		t.buf = append(t.buf, '\n')
	case 'v':
		t.buf = append(t.buf, '\v')
	case 'f':
		t.buf = append(t.buf, '\f')
	case 'r':
		t.buf = append(t.buf, '\r')
	case 'e':
		t.buf = append(t.buf, 0x1B)
	case ' ', '"', '\'', '\\':
		t.buf = append(t.buf, s[i+1])
	case 'N':
		t.buf = append(t.buf, 0xC2, 0x85)
	case '_':
		t.buf = append(t.buf, 0xC2, 0xA0)
	case 'L':
		t.buf = append(t.buf, 0xE2, 0x80, 0xA8)
	case 'P':
		t.buf = append(t.buf, 0xE2, 0x80, 0xA9)
	case 'x':
		code = 2
	case 'u':
		code = 4
	case 'U':
		code = 8
	default:
		return 0, errSlow
	}
	i += 2
	if code == 0 {
		return i, nil
	}
	if i+code > len(s) {
		return 0, errSlow
	}
	v, err := strconv.ParseUint(string(s[i:i+code]), 16, 32)
	if err != nil || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF {
		return 0, errSlow
	}
	t.buf = utf8.AppendRune(t.buf, rune(v))
	return i + code, nil
}

// literal parses a literal block scalar whose '|' is at q.
func (y *yamlParser) literal(q, n int) (int32, error) {
	s := y.src
	t := y.t
	i := q + 1
	chomp := byte(0) // 0 clip, '-' strip, '+' keep
	increment := 0
	for k := 0; k < 2 && i < len(s); k++ {
		switch c := s[i]; {
		case (c == '-' || c == '+') && chomp == 0:
			chomp = c
			i++
		case c >= '1' && c <= '9' && increment == 0:
			increment = int(c - '0')
			i++
		}
	}
	j := i
	for j < len(s) && s[j] == ' ' {
		j++
	}
	if j < len(s) && s[j] != '\n' && (s[j] != '#' || j == i) {
		return -1, errSlow
	}
	p := y.nextLine(j)

	// Find the indentation of the content.
	indent := 0
	if increment > 0 {
		indent = n + increment
	} else {
		maxBlank := 0
		for lp := p; ; {
			k := lp
			for k < len(s) && s[k] == ' ' {
				k++
			}
			if k == len(s) {
				return -1, errSlow // no content at all
			}
			if s[k] == '\n' {
				maxBlank = max(maxBlank, k-lp)
				lp = k + 1
				continue
			}
			indent = k - lp
			if maxBlank > indent {
				return -1, errSlow
			}
			break
		}
		if indent <= n {
			return -1, errSlow // empty scalar followed by more-outdented text
		}
	}

	start := len(t.buf)
	lines := 0
	trailing := 0 // empty lines not yet written
	lastBreak := false
	for p < len(s) {
		k := p
		for k < len(s) && s[k] == ' ' && k-p < indent {
			k++
		}
		if k == len(s) {
			p = k
			break
		}
		if s[k] == '\n' {
			trailing++
			p = k + 1
			continue
		}
		if k-p < indent {
			break // less indented content ends the scalar
		}
		e := y.lineEnd(k)
		if lines > 0 && lastBreak {
			t.buf = append(t.buf, '\n')
		}
		for ; trailing > 0; trailing-- {
			t.buf = append(t.buf, '\n')
		}
		t.buf = append(t.buf, s[k:e]...)
		lines++
		lastBreak = e < len(s)
		p = e
		if lastBreak {
			p++
		}
	}
	if lines == 0 {
		return -1, errSlow
	}
	switch chomp {
	case 0:
		if lastBreak {
			t.buf = append(t.buf, '\n')
		}
	case '+':
		if lastBreak {
			t.buf = append(t.buf, '\n')
		}
		for ; trailing > 0; trailing-- {
			t.buf = append(t.buf, '\n')
		}
	}
	y.pos = p
	node := t.add(kindString)
	t.nodes[node].text = t.bufSpan(start)
	return node, nil
}

// ---------------------------------------------------------------------------
// Plain scalar resolution, as yaml.v2 (YAML 1.1) does it, followed by opm's
// JSON round trip: numbers end up as float64.

var resolveHint = func() (t [256]byte) {
	t['+'], t['-'] = 'S', 'S'
	for c := '0'; c <= '9'; c++ {
		t[c] = 'D'
	}
	for _, c := range "yYnNtTfFoO~" {
		t[c] = 'M'
	}
	t['.'] = '.'
	return t
}()

// resolvePlain resolves a plain scalar. ok is false for values opm cannot
// turn into JSON (NaN, infinities), which go to the slow path for its
// error.
func resolvePlain(s []byte) (k kind, f float64, ok bool) {
	if len(s) == 0 {
		return kindNull, 0, true
	}
	hint := resolveHint[s[0]]
	if hint == 0 {
		return kindString, 0, true
	}
	switch string(s) {
	case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
		return kindTrue, 0, true
	case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
		return kindFalse, 0, true
	case "~", "null", "Null", "NULL":
		return kindNull, 0, true
	case ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF":
		return 0, 0, false
	}
	switch hint {
	case '.':
		if v, err := strconv.ParseFloat(string(s), 64); err == nil {
			return kindNumber, v, true
		}
	case 'D', 'S':
		if isTimestamp(s) {
			return kindString, 0, true
		}
		plain := string(s)
		if bytes.IndexByte(s, '_') >= 0 {
			plain = string(bytes.ReplaceAll(s, []byte("_"), nil))
		}
		if v, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return kindNumber, float64(v), true
		}
		if v, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return kindNumber, float64(v), true
		}
		if yamlStyleFloat(plain) {
			if v, err := strconv.ParseFloat(plain, 64); err == nil {
				return kindNumber, v, true
			}
		}
		if len(plain) > 2 && plain[:2] == "0b" {
			if v, err := strconv.ParseInt(plain[2:], 2, 64); err == nil {
				return kindNumber, float64(v), true
			}
			if v, err := strconv.ParseUint(plain[2:], 2, 64); err == nil {
				return kindNumber, float64(v), true
			}
		} else if len(plain) > 3 && plain[:3] == "-0b" {
			if v, err := strconv.ParseInt("-"+plain[3:], 2, 64); err == nil {
				return kindNumber, float64(v), true
			}
		}
	}
	return kindString, 0, true
}

// yamlStyleFloat matches ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$.
func yamlStyleFloat(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	} else {
		if digits() == 0 {
			return false
		}
		if i < len(s) && s[i] == '.' {
			i++
			digits()
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

var timestampFormats = []string{
	"2006-1-2T15:4:5.999999999Z07:00",
	"2006-1-2t15:4:5.999999999Z07:00",
	"2006-1-2 15:4:5.999999999",
	"2006-1-2",
}

// isTimestamp reports whether yaml.v2 resolves s as a timestamp (which it
// then hands back as the original string when decoding into interface{}).
func isTimestamp(s []byte) bool {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i != 4 || i == len(s) || s[i] != '-' {
		return false
	}
	for _, f := range timestampFormats {
		if _, err := time.Parse(f, string(s)); err == nil {
			return true
		}
	}
	return false
}
