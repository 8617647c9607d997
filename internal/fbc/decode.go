package fbc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/text/cases"
)

// blobs collects what one file (or stream) contributes, in document order.
type blobs struct {
	Packages     []Package
	Channels     []Channel
	Bundles      []Bundle
	Deprecations []Deprecation
	Others       []Meta
}

// decoder turns parsed documents into blobs. Each loading goroutine owns
// one, so its buffers are reused from document to document.
type decoder struct {
	t      tree
	raw    []byte   // canonical JSON of the current blob's raw values
	rawEnd []int    // end offsets in raw, one per raw value
	intern []string // small cache of repeated strings (package names, property types)
}

// use and keep borrow and return scratch memory.
func (d *decoder) use(sc *scratch) {
	sc.useTree(&d.t)
	d.raw = sc.b[:0]
}

func (d *decoder) keep(sc *scratch) {
	sc.keepTree(&d.t)
	sc.b = d.raw[:0]
	d.raw = nil
}

// docError is a problem with one document; the caller adds the file name.
type docError struct {
	line int
	err  error
}

func (e *docError) Error() string { return e.err.Error() }

// metaKeys is what opm's declcfg.Meta extracts from every blob before
// looking at its schema: schema, package and name, matched without regard to
// case, refusing keys that differ only in case.
type metaKeys struct {
	schema, pkg, name string
	exactDup          bool // a key appears twice (YAML: the last one wins)
	folded            bool // schema/package/name spelled with other case
}

// foldKey folds a key the way opm compares Meta keys (cases.Fold).
func foldKey(k []byte) string {
	if hasNonASCII(k) {
		return cases.Fold().String(string(k)) // a Caser is not safe to share
	}
	return strings.ToLower(string(k))
}

// sameFold reports whether two distinct keys are equal after folding.
func sameFold(a, b []byte) bool {
	if hasNonASCII(a) || hasNonASCII(b) {
		return foldKey(a) == foldKey(b)
	}
	return asciiEqualFold(a, b)
}

func asciiEqualFold[T ~string | ~[]byte](a []byte, b T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func (d *decoder) metaKeys(root int32) (metaKeys, error) {
	t := &d.t
	var m metaKeys
	for c := t.nodes[root].first; c >= 0; c = t.nodes[c].next {
		k := t.key(c)
		for o := t.nodes[root].first; o != c; o = t.nodes[o].next {
			ok := t.key(o)
			if bytes.Equal(k, ok) {
				m.exactDup = true
				continue
			}
			if sameFold(k, ok) {
				return m, fmt.Errorf("duplicate keys for key %q: [%s %s]", foldKey(k), ok, k)
			}
		}
		var dst *string
		switch string(k) {
		case "schema":
			dst = &m.schema
		case "package":
			dst = &m.pkg
		case "name":
			dst = &m.name
		default:
			var folded string
			if hasNonASCII(k) {
				folded = foldKey(k)
			} else if len(k) <= 7 {
				for _, name := range [...]string{"schema", "package", "name"} {
					if asciiEqualFold(k, name) {
						folded = name
					}
				}
			}
			switch folded {
			case "schema":
				dst = &m.schema
			case "package":
				dst = &m.pkg
			case "name":
				dst = &m.name
			default:
				continue
			}
			m.folded = true
		}
		if t.nodes[c].kind != kindString {
			return m, fmt.Errorf("expected value for key %q to be a string, got %s", k, t.describe(c))
		}
		*dst = d.str(c)
	}
	return m, nil
}

func hasNonASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

func (t *tree) describe(i int32) string {
	switch t.nodes[i].kind {
	case kindNull:
		return "null"
	case kindTrue, kindFalse:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindMap:
		return "an object"
	case kindSeq:
		return "an array"
	}
	return "a string"
}

// str returns a string node's text, sharing memory for repeated values.
func (d *decoder) str(i int32) string {
	b := d.t.text(i)
	switch string(b) {
	case SchemaBundle:
		return SchemaBundle
	case SchemaChannel:
		return SchemaChannel
	case SchemaPackage:
		return SchemaPackage
	case SchemaDeprecations:
		return SchemaDeprecations
	case PropertyGVK:
		return PropertyGVK
	case PropertyCSVMetadata:
		return PropertyCSVMetadata
	case PropertyBundleObject:
		return PropertyBundleObject
	case PropertyGVKRequired:
		return PropertyGVKRequired
	case PropertyPackageRequired:
		return PropertyPackageRequired
	}
	return validString(b)
}

// internStr is str for values that repeat across blobs of a file (package
// names), kept in a tiny most-recent cache.
func (d *decoder) internStr(i int32) string {
	b := d.t.text(i)
	for _, s := range d.intern {
		if s == string(b) {
			return s
		}
	}
	s := validString(b)
	if len(d.intern) >= 8 {
		copy(d.intern, d.intern[1:])
		d.intern = d.intern[:7]
	}
	d.intern = append(d.intern, s)
	return s
}

// decodeDoc adds the blob in root to out.
func (d *decoder) decodeDoc(root int32, out *blobs) error {
	t := &d.t
	switch t.nodes[root].kind {
	case kindMap:
	case kindNull:
		return errMissingSchema
	default:
		return fmt.Errorf("document is %s, not an object", t.describe(root))
	}
	m, err := d.metaKeys(root)
	if err != nil {
		return err
	}
	// Spelling variants and repeated keys are rare; encoding/json on the
	// canonical JSON (which has the repeats resolved) settles them exactly as
	// opm does.
	fast := !m.exactDup && !m.folded
	switch m.schema {
	case "":
		return errMissingSchema
	case SchemaBundle:
		var b Bundle
		if !fast || !d.bundle(root, &b) {
			b = Bundle{}
			if err := d.slowTyped(root, &b); err != nil {
				return fmt.Errorf("parse bundle: %w", err)
			}
		}
		out.Bundles = append(out.Bundles, b)
	case SchemaChannel:
		var c Channel
		if !fast || !d.channel(root, &c) {
			c = Channel{}
			if err := d.slowTyped(root, &c); err != nil {
				return fmt.Errorf("parse channel: %w", err)
			}
		}
		out.Channels = append(out.Channels, c)
	case SchemaPackage:
		var p Package
		if !fast || !d.pkg(root, &p) {
			p = Package{}
			if err := d.slowTyped(root, &p); err != nil {
				return fmt.Errorf("parse package: %w", err)
			}
		}
		out.Packages = append(out.Packages, p)
	case SchemaDeprecations:
		var dep Deprecation
		if !fast || !d.deprecation(root, &dep) {
			dep = Deprecation{}
			if err := d.slowTyped(root, &dep); err != nil {
				return fmt.Errorf("parse deprecation: %w", err)
			}
		}
		out.Deprecations = append(out.Deprecations, dep)
	default:
		blob := t.appendCanonical(d.raw[:0], root)
		d.raw = blob[:0]
		out.Others = append(out.Others, Meta{
			Schema:  m.schema,
			Package: m.pkg,
			Name:    m.name,
			Blob:    json.RawMessage(bytes.Clone(blob)),
		})
	}
	return nil
}

var errMissingSchema = fmt.Errorf("blob is missing the root schema field")

// slowTyped decodes the canonical JSON of root with encoding/json, which is
// what opm does for every blob.
func (d *decoder) slowTyped(root int32, v any) error {
	blob := d.t.appendCanonical(nil, root)
	return json.Unmarshal(blob, v)
}

// fieldSet lists a struct's JSON field names; a key that matches one only
// without regard to case sends the blob to encoding/json.
type fieldSet []string

func (f fieldSet) folds(k []byte) bool {
	for _, name := range f {
		if len(name) == len(k) && strings.EqualFold(name, string(k)) {
			return true
		}
	}
	return hasNonASCII(k) // encoding/json folds some non-ASCII letters too
}

var (
	bundleFields       = fieldSet{"schema", "name", "package", "image", "properties", "relatedImages"}
	channelFields      = fieldSet{"schema", "name", "package", "entries", "properties"}
	packageFields      = fieldSet{"schema", "name", "defaultChannel", "icon", "description", "properties"}
	deprecationFields  = fieldSet{"schema", "package", "entries"}
	propertyFields     = fieldSet{"type", "value"}
	relatedImageFields = fieldSet{"name", "image"}
	entryFields        = fieldSet{"name", "replaces", "skips", "skipRange"}
	iconFields         = fieldSet{"base64data", "mediatype"}
	depEntryFields     = fieldSet{"reference", "message"}
	referenceFields    = fieldSet{"schema", "name"}
)

// The fast typed decoders below accept exactly the shapes encoding/json
// would decode without error and the same way; anything else (a type
// mismatch, a repeated key, a null where encoding/json would keep a previous
// value) returns false and the caller falls back to encoding/json.

// setStr decodes a string field: a string, or null which leaves it as is.
func (d *decoder) setStr(i int32, dst *string) bool {
	switch d.t.nodes[i].kind {
	case kindString:
		*dst = d.str(i)
		return true
	case kindNull:
		return true
	}
	return false
}

// seen guards against a key repeated inside a nested object.
type seen uint16

func (s *seen) once(bit int) bool {
	if *s&(1<<bit) != 0 {
		return false
	}
	*s |= 1 << bit
	return true
}

func (d *decoder) bundle(root int32, b *Bundle) bool {
	t := &d.t
	d.startRaw()
	for c := t.nodes[root].first; c >= 0; c = t.nodes[c].next {
		ok := true
		switch string(t.key(c)) {
		case "schema":
			ok = d.setStr(c, &b.Schema)
		case "name":
			ok = d.setStr(c, &b.Name)
		case "package":
			if t.nodes[c].kind == kindString {
				b.Package = d.internStr(c)
			} else {
				ok = t.nodes[c].kind == kindNull
			}
		case "image":
			ok = d.setStr(c, &b.Image)
		case "properties":
			ok = d.properties(c, &b.Properties)
		case "relatedImages":
			ok = d.relatedImages(c, &b.RelatedImages)
		default:
			ok = !bundleFields.folds(t.key(c))
		}
		if !ok {
			return false
		}
	}
	d.finishRaw(b.Properties)
	return true
}

func (d *decoder) channel(root int32, ch *Channel) bool {
	t := &d.t
	d.startRaw()
	for c := t.nodes[root].first; c >= 0; c = t.nodes[c].next {
		ok := true
		switch string(t.key(c)) {
		case "schema":
			ok = d.setStr(c, &ch.Schema)
		case "name":
			ok = d.setStr(c, &ch.Name)
		case "package":
			if t.nodes[c].kind == kindString {
				ch.Package = d.internStr(c)
			} else {
				ok = t.nodes[c].kind == kindNull
			}
		case "entries":
			ok = d.entries(c, &ch.Entries)
		case "properties":
			ok = d.properties(c, &ch.Properties)
		default:
			ok = !channelFields.folds(t.key(c))
		}
		if !ok {
			return false
		}
	}
	d.finishRaw(ch.Properties)
	return true
}

func (d *decoder) pkg(root int32, p *Package) bool {
	t := &d.t
	d.startRaw()
	for c := t.nodes[root].first; c >= 0; c = t.nodes[c].next {
		ok := true
		switch string(t.key(c)) {
		case "schema":
			ok = d.setStr(c, &p.Schema)
		case "name":
			ok = d.setStr(c, &p.Name)
		case "defaultChannel":
			ok = d.setStr(c, &p.DefaultChannel)
		case "description":
			ok = d.setStr(c, &p.Description)
		case "icon":
			ok = d.icon(c, &p.Icon)
		case "properties":
			ok = d.properties(c, &p.Properties)
		default:
			ok = !packageFields.folds(t.key(c))
		}
		if !ok {
			return false
		}
	}
	d.finishRaw(p.Properties)
	return true
}

func (d *decoder) deprecation(root int32, dep *Deprecation) bool {
	t := &d.t
	for c := t.nodes[root].first; c >= 0; c = t.nodes[c].next {
		ok := true
		switch string(t.key(c)) {
		case "schema":
			ok = d.setStr(c, &dep.Schema)
		case "package":
			ok = d.setStr(c, &dep.Package)
		case "entries":
			ok = d.depEntries(c, &dep.Entries)
		default:
			ok = !deprecationFields.folds(t.key(c))
		}
		if !ok {
			return false
		}
	}
	return true
}

func (d *decoder) icon(i int32, dst **Icon) bool {
	t := &d.t
	switch t.nodes[i].kind {
	case kindNull:
		*dst = nil
		return true
	case kindMap:
	default:
		return false
	}
	ic := &Icon{}
	var s seen
	for c := t.nodes[i].first; c >= 0; c = t.nodes[c].next {
		switch string(t.key(c)) {
		case "base64data":
			if !s.once(0) {
				return false
			}
			switch t.nodes[c].kind {
			case kindNull:
			case kindString:
				src := t.text(c)
				data := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
				n, err := base64.StdEncoding.Decode(data, src)
				if err != nil {
					return false
				}
				ic.Data = data[:n:n]
			default:
				return false
			}
		case "mediatype":
			if !s.once(1) || !d.setStr(c, &ic.MediaType) {
				return false
			}
		default:
			if iconFields.folds(t.key(c)) {
				return false
			}
		}
	}
	*dst = ic
	return true
}

// properties decodes a properties list. Values are appended to d.raw and
// attached by finishRaw once the blob is done.
func (d *decoder) properties(i int32, dst *[]Property) bool {
	t := &d.t
	switch t.nodes[i].kind {
	case kindNull:
		*dst = nil
		return true
	case kindSeq:
	default:
		return false
	}
	if *dst != nil {
		return false // repeated key; let encoding/json settle it
	}
	props := make([]Property, 0, t.nodes[i].n)
	for e := t.nodes[i].first; e >= 0; e = t.nodes[e].next {
		if t.nodes[e].kind != kindMap {
			return false
		}
		var p Property
		var s seen
		hasValue := false
		for c := t.nodes[e].first; c >= 0; c = t.nodes[c].next {
			switch string(t.key(c)) {
			case "type":
				if !s.once(0) || !d.setStr(c, &p.Type) {
					return false
				}
			case "value":
				if !s.once(1) {
					return false
				}
				d.raw = t.appendCanonical(d.raw, c)
				hasValue = true
			default:
				if propertyFields.folds(t.key(c)) {
					return false
				}
			}
		}
		if hasValue {
			d.rawEnd = append(d.rawEnd, len(d.raw))
		} else {
			d.rawEnd = append(d.rawEnd, -1)
		}
		props = append(props, p)
	}
	*dst = props
	return true
}

func (d *decoder) startRaw() {
	d.raw = d.raw[:0]
	d.rawEnd = d.rawEnd[:0]
}

// finishRaw copies the blob's raw values into one allocation and points the
// properties at their parts.
func (d *decoder) finishRaw(props []Property) {
	if len(d.rawEnd) == 0 {
		return
	}
	all := bytes.Clone(d.raw)
	start := 0
	for i, end := range d.rawEnd {
		if end < 0 {
			continue // no value key: Value stays nil
		}
		props[i].Value = json.RawMessage(all[start:end:end])
		start = end
	}
}

func (d *decoder) relatedImages(i int32, dst *[]RelatedImage) bool {
	t := &d.t
	switch t.nodes[i].kind {
	case kindNull:
		*dst = nil
		return true
	case kindSeq:
	default:
		return false
	}
	if *dst != nil {
		return false
	}
	out := make([]RelatedImage, 0, t.nodes[i].n)
	for e := t.nodes[i].first; e >= 0; e = t.nodes[e].next {
		if t.nodes[e].kind != kindMap {
			return false
		}
		var r RelatedImage
		var s seen
		for c := t.nodes[e].first; c >= 0; c = t.nodes[c].next {
			switch string(t.key(c)) {
			case "name":
				if !s.once(0) || !d.setStr(c, &r.Name) {
					return false
				}
			case "image":
				if !s.once(1) || !d.setStr(c, &r.Image) {
					return false
				}
			default:
				if relatedImageFields.folds(t.key(c)) {
					return false
				}
			}
		}
		out = append(out, r)
	}
	*dst = out
	return true
}

func (d *decoder) entries(i int32, dst *[]ChannelEntry) bool {
	t := &d.t
	switch t.nodes[i].kind {
	case kindNull:
		*dst = nil
		return true
	case kindSeq:
	default:
		return false
	}
	if *dst != nil {
		return false
	}
	out := make([]ChannelEntry, 0, t.nodes[i].n)
	for e := t.nodes[i].first; e >= 0; e = t.nodes[e].next {
		if t.nodes[e].kind != kindMap {
			return false
		}
		var en ChannelEntry
		var s seen
		for c := t.nodes[e].first; c >= 0; c = t.nodes[c].next {
			ok := true
			switch string(t.key(c)) {
			case "name":
				ok = s.once(0) && d.setStr(c, &en.Name)
			case "replaces":
				ok = s.once(1) && d.setStr(c, &en.Replaces)
			case "skipRange":
				ok = s.once(2) && d.setStr(c, &en.SkipRange)
			case "skips":
				ok = s.once(3) && d.strings(c, &en.Skips)
			default:
				ok = !entryFields.folds(t.key(c))
			}
			if !ok {
				return false
			}
		}
		out = append(out, en)
	}
	*dst = out
	return true
}

func (d *decoder) strings(i int32, dst *[]string) bool {
	t := &d.t
	switch t.nodes[i].kind {
	case kindNull:
		*dst = nil
		return true
	case kindSeq:
	default:
		return false
	}
	out := make([]string, 0, t.nodes[i].n)
	for e := t.nodes[i].first; e >= 0; e = t.nodes[e].next {
		if t.nodes[e].kind != kindString {
			return false
		}
		out = append(out, d.str(e))
	}
	*dst = out
	return true
}

func (d *decoder) depEntries(i int32, dst *[]DeprecationEntry) bool {
	t := &d.t
	switch t.nodes[i].kind {
	case kindNull:
		*dst = nil
		return true
	case kindSeq:
	default:
		return false
	}
	out := make([]DeprecationEntry, 0, t.nodes[i].n)
	for e := t.nodes[i].first; e >= 0; e = t.nodes[e].next {
		if t.nodes[e].kind != kindMap {
			return false
		}
		var en DeprecationEntry
		var s seen
		for c := t.nodes[e].first; c >= 0; c = t.nodes[c].next {
			ok := true
			switch string(t.key(c)) {
			case "message":
				ok = s.once(0) && d.setStr(c, &en.Message)
			case "reference":
				ok = s.once(1) && d.reference(c, &en.Reference)
			default:
				ok = !depEntryFields.folds(t.key(c))
			}
			if !ok {
				return false
			}
		}
		out = append(out, en)
	}
	*dst = out
	return true
}

func (d *decoder) reference(i int32, r *PackageScopedReference) bool {
	t := &d.t
	switch t.nodes[i].kind {
	case kindNull:
		return true
	case kindMap:
	default:
		return false
	}
	var s seen
	for c := t.nodes[i].first; c >= 0; c = t.nodes[c].next {
		ok := true
		switch string(t.key(c)) {
		case "schema":
			ok = s.once(0) && d.setStr(c, &r.Schema)
		case "name":
			ok = s.once(1) && d.setStr(c, &r.Name)
		default:
			ok = !referenceFields.folds(t.key(c))
		}
		if !ok {
			return false
		}
	}
	return true
}
