package fbc

import (
	"bytes"
	"errors"
	"math"
	"regexp"
	"slices"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// This file writes a tree as YAML byte for byte the way opm does: opm
// encodes each blob to JSON and converts it with sigs.k8s.io/yaml's
// JSONToYAML, i.e. yaml.v2 decoding the JSON into generic maps and encoding
// them again. So keys are sorted with yaml.v2's "natural" order, scalars get
// yaml.v2's style (plain, quoted or literal) and long lines are folded at
// 80 columns the way libyaml's emitter folds them. Strings the emitter is not
// sure about (carriage returns, Unicode line separators, a byte-order mark,
// keys that need the "? " form) make it return errFallback, and the blob is
// converted by JSONToYAML itself.

// errFallback asks for the reference YAML encoder.
var errFallback = errors.New("fbc: blob needs the reference YAML encoder")

const (
	yamlBestWidth  = 80
	yamlBestIndent = 2
)

// yamlEmitter mirrors the few bits of libyaml emitter state that decide
// where spaces and line breaks go.
type yamlEmitter struct {
	t          *tree
	out        []byte
	col        int  // column in characters
	whitespace bool // the last character written was white space
	indention  bool // only indentation written on this line so far
	keyStyles  map[string]keyStyle
}

// keyStyle caches how a mapping key is written: catalogs repeat a few
// hundred keys millions of times.
type keyStyle struct {
	style scalarStyle
	ascii bool
}

// emitYAMLDoc appends the YAML document for the map at root.
func (e *yamlEmitter) emitDoc(root int32) error {
	e.col, e.whitespace, e.indention = 0, true, true
	n := &e.t.nodes[root]
	if n.kind != kindMap {
		return errFallback
	}
	if n.n == 0 {
		e.out = append(e.out, "{}\n"...)
		return nil
	}
	if err := e.blockMap(root, 0); err != nil {
		return err
	}
	e.writeIndent(0)
	return nil
}

func (e *yamlEmitter) put(c byte) {
	e.out = append(e.out, c)
	e.col++
}

func (e *yamlEmitter) newline() {
	e.out = append(e.out, '\n')
	e.col = 0
}

// writeText appends characters without line breaks.
func (e *yamlEmitter) writeText(b []byte, ascii bool) {
	e.out = append(e.out, b...)
	if ascii {
		e.col += len(b)
	} else {
		e.col += runeCount(b)
	}
}

func runeCount(b []byte) int {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.RuneCount(b)
		}
	}
	return len(b)
}

func (e *yamlEmitter) writeIndent(indent int) {
	if !e.indention || e.col > indent || (e.col == indent && !e.whitespace) {
		e.newline()
	}
	for e.col < indent {
		e.put(' ')
	}
	e.whitespace, e.indention = true, true
}

func (e *yamlEmitter) writeIndicator(ind string, needWhitespace, isWhitespace, isIndention bool) {
	if needWhitespace && !e.whitespace {
		e.put(' ')
	}
	e.out = append(e.out, ind...)
	e.col += len(ind)
	e.whitespace = isWhitespace
	e.indention = e.indention && isIndention
}

// blockMap writes a non-empty map whose keys go in column indent.
func (e *yamlEmitter) blockMap(m int32, indent int) error {
	t := e.t
	base := len(t.stack)
	for c := t.nodes[m].first; c >= 0; c = t.nodes[c].next {
		t.stack = append(t.stack, c)
	}
	members := t.stack[base:]
	if !slices.IsSortedFunc(members, e.keyCmp) {
		slices.SortFunc(members, e.keyCmp)
	}
	defer func() { t.stack = t.stack[:base] }()
	for i := 1; i < len(members); i++ {
		if e.keyCmp(members[i-1], members[i]) == 0 {
			return errFallback // a repeated key: yaml.v2 keeps the last one
		}
	}
	for i := range members {
		c := t.stack[base+i]
		e.writeIndent(indent)
		if err := e.key(t.key(c)); err != nil {
			return err
		}
		e.writeIndicator(":", false, false, false)
		if err := e.node(c, indent, true); err != nil {
			return err
		}
	}
	return nil
}

func (e *yamlEmitter) keyCmp(a, b int32) int {
	ka, kb := e.t.key(a), e.t.key(b)
	switch {
	case yamlKeyLess(ka, kb):
		return -1
	case yamlKeyLess(kb, ka):
		return 1
	}
	return 0
}

// blockSeq writes a non-empty sequence whose "-" go in column indent.
func (e *yamlEmitter) blockSeq(s int32, indent int) error {
	t := e.t
	for c := t.nodes[s].first; c >= 0; c = t.nodes[c].next {
		e.writeIndent(indent)
		e.writeIndicator("-", true, false, true)
		if err := e.node(c, indent, false); err != nil {
			return err
		}
	}
	return nil
}

// node writes the value of a map member or sequence item; indent is the
// enclosing collection's.
func (e *yamlEmitter) node(c int32, indent int, inMap bool) error {
	n := &e.t.nodes[c]
	switch n.kind {
	case kindMap:
		if n.n == 0 {
			e.writeIndicator("{", true, true, false)
			e.writeIndicator("}", false, false, false)
			return nil
		}
		return e.blockMap(c, indent+yamlBestIndent)
	case kindSeq:
		if n.n == 0 {
			e.writeIndicator("[", true, true, false)
			e.writeIndicator("]", false, false, false)
			return nil
		}
		if inMap && !e.indention {
			return e.blockSeq(c, indent) // yaml.v2 does not indent a sequence under a key
		}
		return e.blockSeq(c, indent+yamlBestIndent)
	case kindNull:
		e.plain([]byte("null"), indent+yamlBestIndent, true, true)
	case kindTrue:
		e.plain([]byte("true"), indent+yamlBestIndent, true, true)
	case kindFalse:
		e.plain([]byte("false"), indent+yamlBestIndent, true, true)
	case kindNumber:
		v, isStr := yamlNumber(e.t.text(c))
		if isStr {
			return e.str(v, indent+yamlBestIndent, false)
		}
		e.plain(v, indent+yamlBestIndent, true, true)
	case kindString:
		return e.str(e.t.text(c), indent+yamlBestIndent, false)
	}
	return nil
}

// yamlNumber is how yaml.v2 re-encodes a JSON number: as the int, uint or
// float it resolves to, or, for the odd literal that resolves to none of
// them, as a string.
func yamlNumber(lit []byte) ([]byte, bool) {
	s := string(lit)
	if v, err := strconv.ParseInt(s, 0, 64); err == nil {
		return strconv.AppendInt(nil, v, 10), false
	}
	if v, err := strconv.ParseUint(s, 0, 64); err == nil {
		return strconv.AppendUint(nil, v, 10), false
	}
	if yamlStyleFloat(s) {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			switch {
			case math.IsInf(v, 1):
				return []byte(".inf"), false
			case math.IsInf(v, -1):
				return []byte("-.inf"), false
			case math.IsNaN(v):
				return []byte(".nan"), false
			}
			return strconv.AppendFloat(nil, v, 'g', -1, 64), false
		}
	}
	return lit, true
}

type scalarStyle uint8

const (
	stylePlain scalarStyle = iota
	styleSingle
	styleDouble
	styleLiteral
)

// scalarInfo is libyaml's analysis of a scalar (yaml_emitter_analyze_scalar),
// reduced to block context.
type scalarInfo struct {
	multiline    bool
	plainAllowed bool
	singleOK     bool
	blockOK      bool
	// unsure: leave the string to yaml.v2. Set for CR and the Unicode line
	// breaks (libyaml writes them raw in some styles), a leading byte-order
	// mark (which makes libyaml escape everything), invalid UTF-8, and
	// characters yaml.v2 refuses to read back from JSON (DEL, C1 controls,
	// U+FFFE, U+FFFF), where the reference reports the error.
	unsure bool
	ascii  bool // no multi-byte characters: columns are byte counts
}

// printable is libyaml's is_printable for the character at v[i].
func printable(v []byte, i int) bool {
	c := v[i]
	switch {
	case c == 0x0A || (c >= 0x20 && c <= 0x7E):
		return true
	case c == 0xC2:
		return i+1 < len(v) && v[i+1] >= 0xA0
	case c > 0xC2 && c < 0xED:
		return true
	case c == 0xED:
		return i+1 < len(v) && v[i+1] < 0xA0
	case c == 0xEE:
		return true
	case c == 0xEF:
		return i+2 < len(v) && !(v[i+1] == 0xBB && v[i+2] == 0xBF) && !(v[i+1] == 0xBF && (v[i+2] == 0xBE || v[i+2] == 0xBF))
	}
	return false
}

func charWidth(c byte) int {
	switch {
	case c&0x80 == 0:
		return 1
	case c&0xE0 == 0xC0:
		return 2
	case c&0xF0 == 0xE0:
		return 3
	case c&0xF8 == 0xF0:
		return 4
	}
	return 1
}

// Byte classes for analyzeScalar; 0 is an ordinary printable ASCII
// character, which is most of every string.
const (
	clOrdinary = iota
	clSpace
	clBreak
	clColon
	clHash
	clSpecial // not printable: controls (tab included) and DEL
	clHigh    // first or later byte of a multi-byte character
	clCR
)

var analyzeClass = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = clSpecial
	}
	t[0x7F] = clSpecial
	t[' '] = clSpace
	t['\n'] = clBreak
	t['\r'] = clCR
	t[':'] = clColon
	t['#'] = clHash
	for c := 0x80; c < 0x100; c++ {
		t[c] = clHigh
	}
	return t
}()

// analyzeScalar is libyaml's yaml_emitter_analyze_scalar for block context,
// plus the unsure check. It looks closely only at the bytes that can change
// the outcome: white space, line breaks, ':', '#', controls and non-ASCII.
func analyzeScalar(v []byte) scalarInfo {
	if len(v) == 0 {
		return scalarInfo{plainAllowed: true, singleOK: true, ascii: true}
	}
	var (
		blockIndicators, lineBreaks, special, breakSpace, spaceBreak, bad bool
		ascii                                                             = true
	)
	n := len(v)
	switch c := v[0]; c {
	case '#', ',', '[', ']', '{', '}', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
		blockIndicators = true
	case '?', ':', '-':
		if n == 1 || v[1] == ' ' || v[1] == '\t' {
			blockIndicators = true
		}
	}
	if n >= 3 && (string(v[:3]) == "---" || string(v[:3]) == "...") {
		blockIndicators = true
	}
	if n >= 3 && v[0] == 0xEF && v[1] == 0xBB && v[2] == 0xBF {
		bad = true
	}
	for i := 0; i < n; i++ {
		cl := analyzeClass[v[i]]
		if cl == clOrdinary {
			continue
		}
		switch cl {
		case clSpace:
			if i > 0 && v[i-1] == '\n' {
				breakSpace = true
			}
		case clBreak:
			lineBreaks = true
			if i > 0 && v[i-1] == ' ' {
				spaceBreak = true
			}
		case clColon:
			if i > 0 && (i+1 == n || v[i+1] == ' ' || v[i+1] == '\t') {
				blockIndicators = true
			}
		case clHash:
			if i > 0 {
				if p := v[i-1]; p == ' ' || p == '\t' || p == '\n' || p == 0 {
					blockIndicators = true
				}
			}
		case clSpecial:
			special = true
			if v[i] == 0x7F {
				bad = true
			}
		case clCR:
			special, bad = true, true
		case clHigh:
			ascii = false
			r, size := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && size == 1 || r <= 0x9F || r == 0x2028 || r == 0x2029 || r == 0xFFFE || r == 0xFFFF {
				bad = true
			}
			if !printable(v, i) {
				special = true
			}
			i += size - 1
		}
	}
	leadingSpace, leadingBreak := v[0] == ' ', v[0] == '\n'
	trailingSpace, trailingBreak := v[n-1] == ' ', v[n-1] == '\n'
	info := scalarInfo{multiline: lineBreaks, plainAllowed: true, singleOK: true, blockOK: true, unsure: bad, ascii: ascii}
	if leadingSpace || leadingBreak || trailingSpace || trailingBreak {
		info.plainAllowed = false
	}
	if trailingSpace {
		info.blockOK = false
	}
	if breakSpace {
		info.plainAllowed, info.singleOK = false, false
	}
	if spaceBreak || special {
		info.plainAllowed, info.singleOK, info.blockOK = false, false, false
	}
	if lineBreaks || blockIndicators {
		info.plainAllowed = false
	}
	return info
}

var base60Float = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)

// plainIsString reports whether yaml.v2 reads s, unquoted, back as the same
// string (its encoder quotes it otherwise).
func plainIsString(s []byte) bool {
	k, _, ok := resolvePlain(s)
	if !ok || k != kindString {
		return false
	}
	if len(s) > 0 && (resolveHint[s[0]] == 'D' || resolveHint[s[0]] == 'S') {
		if isTimestamp(s) {
			return false
		}
		if bytes.IndexByte(s, ':') >= 0 && base60Float.Match(s) {
			return false
		}
	}
	return true
}

// chooseStyle is yaml.v2's stringv followed by libyaml's
// yaml_emitter_select_scalar_style.
func chooseStyle(v []byte, key bool) (scalarStyle, scalarInfo) {
	var style scalarStyle
	switch {
	case bytes.IndexByte(v, '\n') >= 0:
		style = styleLiteral
	case plainIsString(v):
		style = stylePlain
	default:
		style = styleDouble
	}
	info := analyzeScalar(v)
	if key && info.multiline {
		style = styleDouble
	}
	if style == stylePlain && (!info.plainAllowed || (len(v) == 0 && key)) {
		style = styleSingle
	}
	if style == styleSingle && !info.singleOK {
		style = styleDouble
	}
	if style == styleLiteral && (!info.blockOK || key) {
		style = styleDouble
	}
	return style, info
}

// key writes a simple mapping key.
func (e *yamlEmitter) key(k []byte) error {
	ks, ok := e.keyStyles[string(k)]
	if !ok {
		if len(k) > 128 || bytes.IndexByte(k, '\n') >= 0 {
			return errFallback // libyaml would use the "? key" form
		}
		style, info := chooseStyle(k, true)
		if info.unsure {
			return errFallback
		}
		ks = keyStyle{style: style, ascii: info.ascii}
		if e.keyStyles == nil {
			e.keyStyles = map[string]keyStyle{}
		}
		if len(e.keyStyles) < 4096 {
			e.keyStyles[string(k)] = ks
		}
	}
	switch ks.style {
	case stylePlain:
		e.plain(k, 0, false, ks.ascii)
	case styleSingle:
		e.single(k, 0, false, ks.ascii)
	default:
		e.double(k, 0, false, ks.ascii)
	}
	return nil
}

// str writes a string value whose continuation lines go in column indent.
func (e *yamlEmitter) str(v []byte, indent int, key bool) error {
	style, info := chooseStyle(v, key)
	if info.unsure {
		return errFallback
	}
	switch style {
	case stylePlain:
		e.plain(v, indent, true, info.ascii)
	case styleSingle:
		e.single(v, indent, true, info.ascii)
	case styleDouble:
		e.double(v, indent, true, info.ascii)
	case styleLiteral:
		e.literal(v, indent, info.ascii)
	}
	return nil
}

// plain writes a plain scalar, folding at spaces past the best width.
func (e *yamlEmitter) plain(v []byte, indent int, allowBreaks, ascii bool) {
	if !e.whitespace {
		e.put(' ')
	}
	if !allowBreaks || (ascii && e.col+len(v) <= yamlBestWidth+1) {
		// No space can come after the best width: nothing to fold.
		e.writeText(v, ascii)
		e.whitespace, e.indention = false, false
		return
	}
	spaces := false
	for i := 0; i < len(v); {
		if v[i] == ' ' {
			if allowBreaks && !spaces && e.col > yamlBestWidth && i+1 < len(v) && v[i+1] != ' ' {
				e.writeIndent(indent)
			} else {
				e.put(' ')
			}
			i++
			spaces = true
			continue
		}
		j := i
		for j < len(v) && v[j] != ' ' {
			j++
		}
		e.writeText(v[i:j], ascii)
		e.indention = false
		spaces = false
		i = j
	}
	e.whitespace, e.indention = false, false
}

// single writes a single-quoted scalar (which never holds a line break:
// strings with one are written literal or double-quoted).
func (e *yamlEmitter) single(v []byte, indent int, allowBreaks, ascii bool) {
	e.writeIndicator("'", true, false, false)
	spaces := false
	for i := 0; i < len(v); {
		c := v[i]
		if c == ' ' {
			if allowBreaks && !spaces && e.col > yamlBestWidth && i > 0 && i < len(v)-1 && v[i+1] != ' ' {
				e.writeIndent(indent)
			} else {
				e.put(' ')
			}
			i++
			spaces = true
			continue
		}
		j := i
		for j < len(v) && v[j] != ' ' && v[j] != '\'' {
			j++
		}
		if j > i {
			e.writeText(v[i:j], ascii)
		} else { // a quote, doubled
			e.put('\'')
			e.put('\'')
			j++
		}
		e.indention = false
		spaces = false
		i = j
	}
	e.writeIndicator("'", false, false, false)
	e.whitespace, e.indention = false, false
}

// double writes a double-quoted scalar with libyaml's escapes.
func (e *yamlEmitter) double(v []byte, indent int, allowBreaks, ascii bool) {
	e.writeIndicator(`"`, true, false, false)
	spaces := false
	for i := 0; i < len(v); {
		c := v[i]
		if !printable(v, i) || c == '\n' || c == '"' || c == '\\' {
			w := charWidth(c)
			r, _ := utf8.DecodeRune(v[i:])
			i += w
			e.escape(r)
			spaces = false
			continue
		}
		if c == ' ' {
			if allowBreaks && !spaces && e.col > yamlBestWidth && i > 0 && i < len(v)-1 {
				e.writeIndent(indent)
				if v[i+1] == ' ' {
					e.put('\\')
				}
			} else {
				e.put(' ')
			}
			i++
			spaces = true
			continue
		}
		// A run of characters written as they are.
		j := i
		for j < len(v) {
			cj := v[j]
			if cj == ' ' || cj == '\n' || cj == '"' || cj == '\\' || !printable(v, j) {
				break
			}
			j += charWidth(cj)
		}
		e.writeText(v[i:j], ascii)
		spaces = false
		i = j
	}
	e.writeIndicator(`"`, false, false, false)
	e.whitespace, e.indention = false, false
}

func (e *yamlEmitter) escape(r rune) {
	e.put('\\')
	switch r {
	case 0x00:
		e.put('0')
	case 0x07:
		e.put('a')
	case 0x08:
		e.put('b')
	case 0x09:
		e.put('t')
	case 0x0A:
		e.put('n')
	case 0x0B:
		e.put('v')
	case 0x0C:
		e.put('f')
	case 0x0D:
		e.put('r')
	case 0x1B:
		e.put('e')
	case '"':
		e.put('"')
	case '\\':
		e.put('\\')
	case 0x85:
		e.put('N')
	case 0xA0:
		e.put('_')
	case 0x2028:
		e.put('L')
	case 0x2029:
		e.put('P')
	default:
		var w int
		switch {
		case r <= 0xFF:
			e.put('x')
			w = 2
		case r <= 0xFFFF:
			e.put('u')
			w = 4
		default:
			e.put('U')
			w = 8
		}
		for k := (w - 1) * 4; k >= 0; k -= 4 {
			e.put("0123456789ABCDEF"[(r>>uint(k))&0xF])
		}
	}
}

// literal writes a literal block scalar ("|") with libyaml's indentation
// and chomping indicators.
func (e *yamlEmitter) literal(v []byte, indent int, ascii bool) {
	e.writeIndicator("|", true, false, false)
	if v[0] == ' ' || v[0] == '\n' {
		e.writeIndicator(strconv.Itoa(yamlBestIndent), false, false, false)
	}
	n := len(v)
	switch {
	case v[n-1] != '\n':
		e.writeIndicator("-", false, false, false)
	case n == 1 || v[n-2] == '\n':
		e.writeIndicator("+", false, false, false)
	}
	e.newline()
	e.indention, e.whitespace = true, true
	breaks := true
	for i := 0; i < len(v); {
		if v[i] == '\n' {
			e.newline()
			e.indention = true
			breaks = true
			i++
			continue
		}
		if breaks {
			e.writeIndent(indent)
		}
		j := bytes.IndexByte(v[i:], '\n')
		if j < 0 {
			j = len(v)
		} else {
			j += i
		}
		e.writeText(v[i:j], ascii)
		e.indention = false
		breaks = false
		i = j
	}
}

// yamlKeyLess is yaml.v2's ordering of string map keys: letters compare as
// characters, runs of digits as numbers, and anything else sorts before a
// letter.
func yamlKeyLess(a, b []byte) bool {
	if hasNonASCII(a) || hasNonASCII(b) {
		return keyLessRunes([]rune(string(a)), []rune(string(b)))
	}
	return keyLessASCII(a, b)
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isASCIIDigit(c byte) bool  { return '0' <= c && c <= '9' }

func keyLessASCII(a, b []byte) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] == b[i] {
			continue
		}
		al, bl := isASCIILetter(a[i]), isASCIILetter(b[i])
		if al && bl {
			return a[i] < b[i]
		}
		if al || bl {
			return bl
		}
		var an, bn int64
		if a[i] == '0' || b[i] == '0' {
			for j := i - 1; j >= 0 && isASCIIDigit(a[j]); j-- {
				if a[j] != '0' {
					an, bn = 1, 1
					break
				}
			}
		}
		ai, bi := i, i
		for ; ai < len(a) && isASCIIDigit(a[ai]); ai++ {
			an = an*10 + int64(a[ai]-'0')
		}
		for ; bi < len(b) && isASCIIDigit(b[bi]); bi++ {
			bn = bn*10 + int64(b[bi]-'0')
		}
		if an != bn {
			return an < bn
		}
		if ai != bi {
			return ai < bi
		}
		return a[i] < b[i]
	}
	return len(a) < len(b)
}

func keyLessRunes(a, b []rune) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] == b[i] {
			continue
		}
		al, bl := unicode.IsLetter(a[i]), unicode.IsLetter(b[i])
		if al && bl {
			return a[i] < b[i]
		}
		if al || bl {
			return bl
		}
		var an, bn int64
		if a[i] == '0' || b[i] == '0' {
			for j := i - 1; j >= 0 && unicode.IsDigit(a[j]); j-- {
				if a[j] != '0' {
					an, bn = 1, 1
					break
				}
			}
		}
		ai, bi := i, i
		for ; ai < len(a) && unicode.IsDigit(a[ai]); ai++ {
			an = an*10 + int64(a[ai]-'0')
		}
		for ; bi < len(b) && unicode.IsDigit(b[bi]); bi++ {
			bn = bn*10 + int64(b[bi]-'0')
		}
		if an != bn {
			return an < bn
		}
		if ai != bi {
			return ai < bi
		}
		return a[i] < b[i]
	}
	return len(a) < len(b)
}
