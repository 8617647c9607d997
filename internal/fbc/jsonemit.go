package fbc

import (
	"encoding/base64"
	"errors"
	"unsafe"
)

// jsonEmitter writes blobs as json.Encoder does with SetIndent("", "    ")
// and SetEscapeHTML(false): struct fields in declaration order, omitempty as
// tagged, raw values compacted and re-indented, one value per line group.
type jsonEmitter struct {
	out []byte
}

var errBadRaw = errors.New("fbc: invalid raw JSON")

func (j *jsonEmitter) indent(depth int) {
	j.out = append(j.out, '\n')
	for range depth {
		j.out = append(j.out, "    "...)
	}
}

// object helps write one JSON object field by field.
type jsonObject struct {
	j     *jsonEmitter
	depth int
	n     int
}

func (j *jsonEmitter) object(depth int) jsonObject {
	j.out = append(j.out, '{')
	return jsonObject{j: j, depth: depth}
}

func (o *jsonObject) key(k string) {
	if o.n > 0 {
		o.j.out = append(o.j.out, ',')
	}
	o.n++
	o.j.indent(o.depth + 1)
	o.j.out = append(o.j.out, '"')
	o.j.out = append(o.j.out, k...) // field names need no escaping
	o.j.out = append(o.j.out, `": `...)
}

func (o *jsonObject) str(k, v string) {
	o.key(k)
	o.j.out = appendJSONStringS(o.j.out, v)
}

func (o *jsonObject) end() {
	if o.n > 0 {
		o.j.indent(o.depth)
	}
	o.j.out = append(o.j.out, '}')
}

func appendJSONStringS(dst []byte, s string) []byte {
	// appendJSONString only reads its argument, so a view of the string's
	// bytes saves copying every string once more.
	return appendJSONString(dst, unsafe.Slice(unsafe.StringData(s), len(s)))
}

func (j *jsonEmitter) properties(o *jsonObject, props []Property) error {
	if len(props) == 0 {
		return nil
	}
	o.key("properties")
	j.out = append(j.out, '[')
	for i := range props {
		if i > 0 {
			j.out = append(j.out, ',')
		}
		j.indent(o.depth + 2)
		po := j.object(o.depth + 2)
		po.str("type", props[i].Type)
		po.key("value")
		if err := j.raw(props[i].Value, o.depth+3); err != nil {
			return err
		}
		po.end()
	}
	j.indent(o.depth + 1)
	j.out = append(j.out, ']')
	return nil
}

// raw writes a json.RawMessage value: nil as null, anything else compacted
// and indented, or errBadRaw when it is not valid JSON.
func (j *jsonEmitter) raw(v []byte, depth int) error {
	if v == nil {
		j.out = append(j.out, "null"...)
		return nil
	}
	r := reindenter{src: v, j: j}
	if err := r.value(depth); err != nil {
		return err
	}
	r.skipSpace()
	if r.pos != len(v) {
		return errBadRaw
	}
	return nil
}

func (j *jsonEmitter) pkg(p *Package) error {
	o := j.object(0)
	o.str("schema", p.Schema)
	o.str("name", p.Name)
	o.str("defaultChannel", p.DefaultChannel)
	if p.Icon != nil {
		o.key("icon")
		io := j.object(1)
		io.key("base64data")
		if p.Icon.Data == nil {
			j.out = append(j.out, "null"...)
		} else {
			j.out = append(j.out, '"')
			j.out = base64.StdEncoding.AppendEncode(j.out, p.Icon.Data)
			j.out = append(j.out, '"')
		}
		io.str("mediatype", p.Icon.MediaType)
		io.end()
	}
	if p.Description != "" {
		o.str("description", p.Description)
	}
	if err := j.properties(&o, p.Properties); err != nil {
		return err
	}
	o.end()
	return nil
}

func (j *jsonEmitter) channel(c *Channel) error {
	o := j.object(0)
	o.str("schema", c.Schema)
	o.str("name", c.Name)
	o.str("package", c.Package)
	o.key("entries")
	switch {
	case c.Entries == nil:
		j.out = append(j.out, "null"...)
	case len(c.Entries) == 0:
		j.out = append(j.out, "[]"...)
	default:
		j.out = append(j.out, '[')
		for i := range c.Entries {
			e := &c.Entries[i]
			if i > 0 {
				j.out = append(j.out, ',')
			}
			j.indent(2)
			eo := j.object(2)
			eo.str("name", e.Name)
			if e.Replaces != "" {
				eo.str("replaces", e.Replaces)
			}
			if len(e.Skips) > 0 {
				eo.key("skips")
				j.out = append(j.out, '[')
				for k, s := range e.Skips {
					if k > 0 {
						j.out = append(j.out, ',')
					}
					j.indent(4)
					j.out = appendJSONStringS(j.out, s)
				}
				j.indent(3)
				j.out = append(j.out, ']')
			}
			if e.SkipRange != "" {
				eo.str("skipRange", e.SkipRange)
			}
			eo.end()
		}
		j.indent(1)
		j.out = append(j.out, ']')
	}
	if err := j.properties(&o, c.Properties); err != nil {
		return err
	}
	o.end()
	return nil
}

func (j *jsonEmitter) bundle(b *Bundle) error {
	o := j.object(0)
	o.str("schema", b.Schema)
	if b.Name != "" {
		o.str("name", b.Name)
	}
	if b.Package != "" {
		o.str("package", b.Package)
	}
	o.str("image", b.Image)
	if err := j.properties(&o, b.Properties); err != nil {
		return err
	}
	if len(b.RelatedImages) > 0 {
		o.key("relatedImages")
		j.out = append(j.out, '[')
		for i := range b.RelatedImages {
			if i > 0 {
				j.out = append(j.out, ',')
			}
			j.indent(2)
			ro := j.object(2)
			ro.str("name", b.RelatedImages[i].Name)
			ro.str("image", b.RelatedImages[i].Image)
			ro.end()
		}
		j.indent(1)
		j.out = append(j.out, ']')
	}
	o.end()
	return nil
}

func (j *jsonEmitter) deprecation(d *Deprecation) error {
	o := j.object(0)
	o.str("schema", d.Schema)
	o.str("package", d.Package)
	o.key("entries")
	switch {
	case d.Entries == nil:
		j.out = append(j.out, "null"...)
	case len(d.Entries) == 0:
		j.out = append(j.out, "[]"...)
	default:
		j.out = append(j.out, '[')
		for i := range d.Entries {
			e := &d.Entries[i]
			if i > 0 {
				j.out = append(j.out, ',')
			}
			j.indent(2)
			eo := j.object(2)
			eo.key("reference")
			ro := j.object(3)
			ro.str("schema", e.Reference.Schema)
			if e.Reference.Name != "" {
				ro.str("name", e.Reference.Name)
			}
			ro.end()
			eo.str("message", e.Message)
			eo.end()
		}
		j.indent(1)
		j.out = append(j.out, ']')
	}
	o.end()
	return nil
}

func (j *jsonEmitter) meta(m *Meta) error {
	if len(m.Blob) == 0 {
		return errBadRaw
	}
	return j.raw(m.Blob, 0)
}

// reindenter validates raw JSON and writes it indented, copying strings and
// numbers verbatim as json.Compact and json.Indent do.
type reindenter struct {
	src []byte
	pos int
	j   *jsonEmitter
}

func (r *reindenter) skipSpace() {
	for r.pos < len(r.src) && isJSONSpace(r.src[r.pos]) {
		r.pos++
	}
}

func (r *reindenter) value(depth int) error {
	if depth > maxDepth {
		return errBadRaw
	}
	r.skipSpace()
	if r.pos >= len(r.src) {
		return errBadRaw
	}
	j := r.j
	switch c := r.src[r.pos]; {
	case c == '{':
		r.pos++
		r.skipSpace()
		if r.pos < len(r.src) && r.src[r.pos] == '}' {
			r.pos++
			j.out = append(j.out, "{}"...)
			return nil
		}
		j.out = append(j.out, '{')
		for {
			r.skipSpace()
			j.indent(depth + 1)
			if r.pos >= len(r.src) || r.src[r.pos] != '"' {
				return errBadRaw
			}
			if err := r.str(); err != nil {
				return err
			}
			r.skipSpace()
			if r.pos >= len(r.src) || r.src[r.pos] != ':' {
				return errBadRaw
			}
			r.pos++
			j.out = append(j.out, ": "...)
			if err := r.value(depth + 1); err != nil {
				return err
			}
			r.skipSpace()
			if r.pos >= len(r.src) {
				return errBadRaw
			}
			if r.src[r.pos] == ',' {
				r.pos++
				j.out = append(j.out, ',')
				continue
			}
			if r.src[r.pos] != '}' {
				return errBadRaw
			}
			r.pos++
			j.indent(depth)
			j.out = append(j.out, '}')
			return nil
		}
	case c == '[':
		r.pos++
		r.skipSpace()
		if r.pos < len(r.src) && r.src[r.pos] == ']' {
			r.pos++
			j.out = append(j.out, "[]"...)
			return nil
		}
		j.out = append(j.out, '[')
		for {
			j.indent(depth + 1)
			if err := r.value(depth + 1); err != nil {
				return err
			}
			r.skipSpace()
			if r.pos >= len(r.src) {
				return errBadRaw
			}
			if r.src[r.pos] == ',' {
				r.pos++
				j.out = append(j.out, ',')
				continue
			}
			if r.src[r.pos] != ']' {
				return errBadRaw
			}
			r.pos++
			j.indent(depth)
			j.out = append(j.out, ']')
			return nil
		}
	case c == '"':
		return r.str()
	case c == 't':
		return r.lit("true")
	case c == 'f':
		return r.lit("false")
	case c == 'n':
		return r.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return r.number()
	}
	return errBadRaw
}

func (r *reindenter) lit(s string) error {
	if len(r.src)-r.pos < len(s) || string(r.src[r.pos:r.pos+len(s)]) != s {
		return errBadRaw
	}
	r.pos += len(s)
	r.j.out = append(r.j.out, s...)
	return nil
}

func (r *reindenter) number() error {
	s := r.src
	start := r.pos
	i := r.pos
	if s[i] == '-' {
		i++
	}
	digits := func() int {
		k := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - k
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		return errBadRaw
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return errBadRaw
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return errBadRaw
		}
	}
	r.pos = i
	r.j.out = append(r.j.out, s[start:i]...)
	return nil
}

// str copies a JSON string verbatim after checking it.
func (r *reindenter) str() error {
	s := r.src
	start := r.pos
	i := r.pos + 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			r.pos = i + 1
			r.j.out = append(r.j.out, s[start:r.pos]...)
			return nil
		case c < 0x20:
			return errBadRaw
		case c == '\\':
			if i+1 >= len(s) {
				return errBadRaw
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(s, i+2); !ok {
					return errBadRaw
				}
				i += 6
			default:
				return errBadRaw
			}
		default:
			i++
		}
	}
	return errBadRaw
}
