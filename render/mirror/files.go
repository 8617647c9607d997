package mirror

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-gitops/ferry/spec"
)

// Paths inside the render directory, part of Ferry's contract with
// reviewers, `oc image mirror` users and GitOps tools.
const (
	Dir         = "mirror"
	MappingFile = "mirror/mapping.txt"
	IDMSFile    = "mirror/imagedigestmirrorset.yaml"
	ITMSFile    = "mirror/imagetagmirrorset.yaml"
	ICSPFile    = "mirror/imagecontentsourcepolicy.yaml"
	LockFile    = "ferry.lock.yaml"
	LockKind    = "Lock"
	LockVersion = spec.APIVersion
)

// ObjectFile returns the file of a mirror object kind (spec.ObjectIDMS,
// ObjectITMS, ObjectICSP), or "" for another kind.
func ObjectFile(kind string) string {
	switch kind {
	case spec.ObjectIDMS:
		return IDMSFile
	case spec.ObjectITMS:
		return ITMSFile
	case spec.ObjectICSP:
		return ICSPFile
	}
	return ""
}

// WriteMapping writes mapping.txt: one SRC=DST line per copy, the source
// pinned by digest, the destination tagged, sorted, what
// `oc image mirror -f` reads.
func (s *Set) WriteMapping(w io.Writer) error {
	pairs := s.CopyPairs()
	lines := make([]string, 0, len(pairs))
	for _, c := range pairs {
		lines = append(lines, c.Source+"="+c.Destination+"\n")
	}
	sort.Strings(lines)
	for _, l := range lines {
		if _, err := io.WriteString(w, l); err != nil {
			return err
		}
	}
	return nil
}

// Files renders every mirror output, by render-directory path: mapping.txt,
// one file per kind in the Mirror's objects that has entries, and the lock
// file. A kind with no entries (no tag-only images for ImageTagMirrorSet)
// has no file, so a file that stops applying disappears from the render.
func (s *Set) Files(opts Options) (map[string][]byte, error) {
	out := map[string][]byte{}
	var b bytes.Buffer
	if err := s.WriteMapping(&b); err != nil {
		return nil, err
	}
	out[MappingFile] = b.Bytes()
	kinds := s.Mirror.Objects
	if len(kinds) == 0 {
		kinds = []string{spec.ObjectIDMS, spec.ObjectITMS}
	}
	for _, k := range kinds {
		f := ObjectFile(k)
		if f == "" {
			return nil, fmt.Errorf("unknown mirror object kind %q", k)
		}
		data, err := s.MirrorSets(k, opts)
		if err != nil {
			return nil, err
		}
		if data != nil {
			out[f] = data
		}
	}
	lock, err := s.Lock().Marshal()
	if err != nil {
		return nil, err
	}
	out[LockFile] = lock
	return out, nil
}

// Lock records every digest a run used, so a later run can tell that
// nothing changed by comparing it, and can repeat the run exactly with
// Resolved instead of resolving tags again.
type Lock struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	// Revision is the input revision (the config repository commit).
	Revision string `yaml:"revision,omitempty"`
	// Mirror is the destination registry[/namespace].
	Mirror string `yaml:"mirror"`
	// MaxPathComponents is recorded because it changes every destination,
	// Platforms because they change what a copy of an index includes.
	MaxPathComponents int             `yaml:"maxPathComponents,omitempty"`
	Platforms         []string        `yaml:"platforms,omitempty"`
	Catalogs          []LockedCatalog `yaml:"catalogs,omitempty"`
	Images            []LockedImage   `yaml:"images,omitempty"`
	Blocked           []LockedBlocked `yaml:"blocked,omitempty"`
}

// LockedCatalog is one catalog's source and built digests.
type LockedCatalog struct {
	Name         string `yaml:"name"`
	Source       string `yaml:"source,omitempty"`
	SourceDigest string `yaml:"sourceDigest,omitempty"`
	Target       string `yaml:"target,omitempty"`
	Digest       string `yaml:"digest,omitempty"`
}

// LockedImage is one image of the set: source, digest, destination.
type LockedImage struct {
	Source      string `yaml:"source"`
	Digest      string `yaml:"digest"`
	Destination string `yaml:"destination"`
}

// LockedBlocked is an image blockedImages removed.
type LockedBlocked struct {
	Source  string `yaml:"source"`
	Pattern string `yaml:"pattern"`
}

// Lock returns the set's lock.
func (s *Set) Lock() *Lock {
	l := &Lock{
		APIVersion:        LockVersion,
		Kind:              LockKind,
		Revision:          s.Revision,
		Mirror:            s.Mirror.Registry,
		MaxPathComponents: s.Mirror.MaxPathComponents,
		Platforms:         slices.Clone(s.Mirror.Platforms),
		Catalogs:          slices.Clone(s.Catalogs),
	}
	for i := range s.Images {
		img := &s.Images[i]
		l.Images = append(l.Images, LockedImage{Source: img.Source, Digest: img.Digest, Destination: img.Destination})
	}
	for _, b := range s.Blocked {
		l.Blocked = append(l.Blocked, LockedBlocked{Source: b.Source, Pattern: b.Pattern})
	}
	return l
}

// Marshal encodes the lock; the same lock gives the same bytes. The lock of
// a large catalog has thousands of entries, so it is written directly
// rather than through a YAML encoder's node tree (ten times faster, a tenth
// of the garbage); ReadLock reads it with a real YAML decoder, and tests
// hold the two to each other.
func (l *Lock) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(64 + 300*len(l.Images))
	field := func(indent, key, val string) {
		if val != "" {
			b.WriteString(indent + key + ": " + yamlScalar(val) + "\n")
		}
	}
	list := func(indent, key string, items []string) {
		if len(items) == 0 {
			return
		}
		b.WriteString(indent + key + ":\n")
		for _, it := range items {
			b.WriteString(indent + "  - " + yamlScalar(it) + "\n")
		}
	}
	field("", "apiVersion", l.APIVersion)
	field("", "kind", l.Kind)
	field("", "revision", l.Revision)
	b.WriteString("mirror: " + yamlScalar(l.Mirror) + "\n")
	if l.MaxPathComponents != 0 {
		b.WriteString("maxPathComponents: " + strconv.Itoa(l.MaxPathComponents) + "\n")
	}
	list("", "platforms", l.Platforms)
	if len(l.Catalogs) > 0 {
		b.WriteString("catalogs:\n")
		for _, c := range l.Catalogs {
			b.WriteString("  - name: " + yamlScalar(c.Name) + "\n")
			field("    ", "source", c.Source)
			field("    ", "sourceDigest", c.SourceDigest)
			field("    ", "target", c.Target)
			field("    ", "digest", c.Digest)
		}
	}
	if len(l.Images) > 0 {
		b.WriteString("images:\n")
		for _, img := range l.Images {
			b.WriteString("  - source: " + yamlScalar(img.Source) + "\n")
			b.WriteString("    digest: " + yamlScalar(img.Digest) + "\n")
			b.WriteString("    destination: " + yamlScalar(img.Destination) + "\n")
		}
	}
	if len(l.Blocked) > 0 {
		b.WriteString("blocked:\n")
		for _, x := range l.Blocked {
			b.WriteString("  - source: " + yamlScalar(x.Source) + "\n")
			b.WriteString("    pattern: " + yamlScalar(x.Pattern) + "\n")
		}
	}
	return b.Bytes(), nil
}

// plain reports whether s reads back as the same string when written
// unquoted: image references, digests, names. Anything else, and anything
// that could read as a number, bool or null, is quoted.
func plain(s string) bool {
	if s == "" || !(isLetter(s[0]) || s[0] == '_' || s[0] == '/') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && strings.IndexByte("_./:@+-", c) < 0 {
			return false
		}
	}
	if last := s[len(s)-1]; last == ':' || last == '-' {
		return false
	}
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "y", "n", "on", "off", "null":
		return false
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// yamlScalar writes s plain when that is unambiguous, else double-quoted
// with every character YAML does not allow raw, or reads as a line break,
// escaped.
func yamlScalar(s string) string {
	if plain(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r >= 0x20 && r <= 0x7e, r >= 0xa0 && r <= 0xd7ff && r != 0x2028 && r != 0x2029,
			r >= 0xe000 && r <= 0xfffd && r != 0xfeff, r >= 0x10000 && r <= 0x10ffff:
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, "\\x%02x", r)
		case r <= 0xffff:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			fmt.Fprintf(&b, "\\U%08x", r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Resolved returns the digest of every tag-only source of the lock, in the
// form Input.Resolved takes, to repeat a run without resolving tags.
func (l *Lock) Resolved() map[string]string {
	out := map[string]string{}
	for _, img := range l.Images {
		if r, err := parseRef(img.Source); err == nil && r.digest == "" {
			out[img.Source] = img.Digest
		}
	}
	return out
}

// MaxLockSize bounds what ReadLock reads. A lock costs about 300 bytes per
// image, so 64 MiB is room for two hundred thousand images, far beyond the
// largest real image set, and keeps a lock committed by someone else (or
// a link to /dev/zero) from exhausting memory.
const MaxLockSize = 64 << 20

// lockLimit is MaxLockSize; tests lower it.
var lockLimit int64 = MaxLockSize

// ErrLockTooLarge is returned by ReadLock for a lock over MaxLockSize.
var ErrLockTooLarge = fmt.Errorf("lock file is over the %d MiB limit, more than any image set needs", MaxLockSize>>20)

// ReadLock decodes a lock file written by Marshal, reading at most
// MaxLockSize bytes. The YAML decoder bounds alias expansion itself.
func ReadLock(r io.Reader) (*Lock, error) {
	br := &boundedReader{r: r, left: lockLimit}
	dec := yaml.NewDecoder(br)
	dec.KnownFields(true)
	var l Lock
	if err := dec.Decode(&l); err != nil {
		if br.left < 0 { // the decoder keeps only the text of reader errors
			err = ErrLockTooLarge
		}
		return nil, fmt.Errorf("read lock: %w", err)
	}
	if l.APIVersion != LockVersion || l.Kind != LockKind {
		return nil, fmt.Errorf("read lock: %s %s is not a %s %s", l.APIVersion, l.Kind, LockVersion, LockKind)
	}
	return &l, nil
}

// boundedReader fails once more than left bytes are read, rather than
// ending quietly as io.LimitReader does, so a truncated lock is never taken
// for a whole one.
type boundedReader struct {
	r    io.Reader
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, ErrLockTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, ErrLockTooLarge
	}
	return n, err
}
