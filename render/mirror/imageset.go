package mirror

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/spec"
)

// Catalog is one rendered catalog whose images are mirrored.
type Catalog struct {
	// Name is the Catalog's metadata.name.
	Name string
	// Config is the rendered (filtered) catalog: the image and the related
	// images of each of its bundles are mirrored.
	Config *fbc.DeclarativeConfig
	// Source is the source catalog as the spec names it (an image reference
	// or a local directory) and SourceDigest the digest it was read at,
	// empty for a directory. They are recorded in the lock file only.
	Source       string
	SourceDigest string
	// Target is where the built catalog image is pushed, repository[:tag],
	// and Digest the built image's digest. With no Target nothing was built
	// and the catalog contributes only its bundles' images.
	Target string
	Digest string
}

// Input is everything the image set is computed from.
type Input struct {
	// Mirror is the destination. Required.
	Mirror *spec.MirrorSpec
	// Catalogs are the rendered catalogs, in spec order.
	Catalogs []Catalog
	// Resolved maps every reference Unresolved returned (normalized, as
	// Unresolved spells it; the reference as written is accepted too) to
	// the digest the caller resolved it to, once per run. Build fails on a
	// tag it has no digest for, so every image is copied by digest.
	Resolved map[string]string
	// Revision is the input revision (the config repository commit); it is
	// recorded in the lock file.
	Revision string
}

// Role says why an image is in the set.
type Role string

// The roles an image can have; one image can have several (a bundle image
// is usually listed among its bundle's related images too).
const (
	RoleCatalog    Role = "catalog"    // a built catalog image
	RoleBundle     Role = "bundle"     // a kept bundle's own image
	RoleRelated    Role = "related"    // a related image of a kept bundle
	RoleAdditional Role = "additional" // the Mirror's additionalImages
)

// Image is one image of the set, pinned by digest, with where it goes.
type Image struct {
	// Source is the reference as catalogs and the spec name it, normalized:
	// host/path[:tag][@digest], :latest when neither was given.
	Source string
	// Repository is the source repository, host/path.
	Repository string
	// Tag is the source tag, empty for a digest-only reference.
	Tag string
	// Digest is the digest copied: the reference's own or, for a tag-only
	// reference, the one the caller resolved (Resolved is then true).
	Digest   string
	Resolved bool
	// Destination is where the image is copied, repository:tag: the source
	// tag, or HashTag of the source for a digest-only reference (and for a
	// tag@digest reference whose tag other references use at another
	// digest).
	Destination string
	// DestinationRepository is Destination without the tag.
	DestinationRepository string
	// InPlace is set for an image that is already in the mirror (a built
	// catalog pushed straight to it, or a source under the Mirror
	// registry): nothing is copied and no mirror set entry is written.
	InPlace bool
	// Roles and Catalogs say why the image is in the set; Catalogs are the
	// names of the catalogs that need it, sorted.
	Roles    []Role
	Catalogs []string
}

// Pinned is the source by digest, what the copy engine reads.
func (i *Image) Pinned() string { return i.Repository + "@" + i.Digest }

// DestinationPinned is the copied image by digest in the mirror.
func (i *Image) DestinationPinned() string { return i.DestinationRepository + "@" + i.Digest }

// ByDigest reports whether the image is referenced by digest, so the
// cluster needs an ImageDigestMirrorSet entry for it; a tag-only reference
// needs an ImageTagMirrorSet entry.
func (i *Image) ByDigest() bool { return !i.Resolved }

// Blocked is an image left out because a blockedImages pattern matched it.
type Blocked struct {
	// Source is the normalized reference.
	Source string
	// Pattern is the first blockedImages entry that matched.
	Pattern  string
	Roles    []Role
	Catalogs []string
}

// Set is the image set of one run: what to copy and where.
type Set struct {
	// Mirror is a copy of the destination the set was built for.
	Mirror spec.MirrorSpec
	// Revision is the input revision.
	Revision string
	// Catalogs are the source and built catalog digests, by name.
	Catalogs []LockedCatalog
	// Images are sorted by Source; each Source appears once.
	Images []Image
	// Blocked are the images blockedImages removed, sorted by Source.
	Blocked []Blocked
}

// Copy is one image to copy: the source by digest to a destination tag.
type Copy struct {
	Source      string // host/path@digest
	Destination string // host/path:tag
	Digest      string
}

// CollisionError reports two sources that would land on one destination.
// Mirroring both would silently overwrite one with the other.
type CollisionError struct {
	// Destination is a destination repository or, when Tag is set,
	// repository:tag that would receive different digests.
	Destination string
	Tag         bool
	// Sources are the colliding source repositories (or references), sorted.
	Sources []string
	// Hint says why repositories collide and what to do, naming only the
	// cause that applies (spec.MirrorSpec.CollisionHint); empty for tags.
	Hint string
}

func (e *CollisionError) Error() string {
	if e.Tag {
		return fmt.Sprintf("destination %s would receive different images from %s", e.Destination, strings.Join(e.Sources, " and "))
	}
	return fmt.Sprintf("destination repository %s would receive both %s: %s", e.Destination, strings.Join(e.Sources, " and "), e.Hint)
}

// MissingDigestError lists tag references the caller did not resolve.
type MissingDigestError struct {
	Refs []string
}

func (e *MissingDigestError) Error() string {
	return fmt.Sprintf("no digest resolved for %d tag reference(s): %s", len(e.Refs), strings.Join(e.Refs, ", "))
}

// InvalidReferenceError is an image reference that cannot be parsed.
type InvalidReferenceError struct {
	Ref   string
	Where string // e.g. catalog certified, bundle foo.v1.2.3
	Err   error
}

func (e *InvalidReferenceError) Error() string {
	return fmt.Sprintf("%s: image %q: %v", e.Where, e.Ref, e.Err)
}

func (e *InvalidReferenceError) Unwrap() error { return e.Err }

// want is one image as collected from the inputs, before resolution.
type want struct {
	ref      ref
	written  string
	roles    map[Role]bool
	catalogs map[string]bool
}

type collected struct {
	wants   map[string]*want // by normalized reference
	blocked map[string]*Blocked
	seen    map[string]spelling // by reference as written
	errs    []error
}

type spelling struct {
	ref     ref
	key     string
	err     bool
	checked bool // against blockedImages, and not blocked
}

func (c *collected) add(raw, where, catalog string, role Role, patterns []*regexp.Regexp) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return
	}
	// Catalogs repeat references (a bundle image among its related images,
	// one operator image in every bundle of a channel): parse and match
	// each spelling once.
	seen, ok := c.seen[raw]
	if !ok {
		r, err := parseRef(raw)
		if err != nil {
			c.errs = append(c.errs, &InvalidReferenceError{Ref: raw, Where: where, Err: err})
			c.seen[raw] = spelling{err: true}
			return
		}
		seen = spelling{ref: r, key: r.String()}
		c.seen[raw] = seen
	}
	if seen.err {
		return
	}
	r, key := seen.ref, seen.key
	if w := c.wants[key]; role != RoleCatalog && (w == nil || !w.roles[RoleCatalog]) {
		if b := c.blocked[key]; b != nil {
			b.Roles = addRole(b.Roles, role)
			b.Catalogs = addName(b.Catalogs, catalog)
			return
		}
		if !seen.checked { // else this spelling passed the patterns before
			for _, re := range patterns {
				if re.MatchString(key) || re.MatchString(raw) {
					c.blocked[key] = &Blocked{Source: key, Pattern: re.String(), Roles: []Role{role}, Catalogs: addName(nil, catalog)}
					return
				}
			}
			seen.checked = true
			c.seen[raw] = seen
		}
	}
	w := c.wants[key]
	if w == nil {
		w = &want{ref: r, written: raw, roles: map[Role]bool{}, catalogs: map[string]bool{}}
		c.wants[key] = w
	}
	w.roles[role] = true
	if catalog != "" {
		w.catalogs[catalog] = true
	}
}

func addRole(rs []Role, r Role) []Role {
	if !slices.Contains(rs, r) {
		rs = append(rs, r)
		slices.Sort(rs)
	}
	return rs
}

func addName(ns []string, n string) []string {
	if n != "" && !slices.Contains(ns, n) {
		ns = append(ns, n)
		slices.Sort(ns)
	}
	return ns
}

func collect(in Input) *collected {
	c := &collected{wants: map[string]*want{}, blocked: map[string]*Blocked{}, seen: map[string]spelling{}}
	if in.Mirror == nil {
		c.errs = append(c.errs, errors.New("no Mirror: the image set needs a destination registry"))
		return c
	}
	var patterns []*regexp.Regexp
	for i, b := range in.Mirror.BlockedImages {
		re, err := regexp.Compile(b)
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("blockedImages[%d]: %w", i, err))
			continue
		}
		patterns = append(patterns, re)
	}
	for ci := range in.Catalogs {
		cat := &in.Catalogs[ci]
		if cat.Target != "" {
			if err := checkDigest(cat.Digest); err != nil {
				c.errs = append(c.errs, fmt.Errorf("catalog %s: built image %s: %w", cat.Name, cat.Target, err))
			} else {
				c.add(cat.Target+"@"+cat.Digest, "catalog "+cat.Name+", built image", cat.Name, RoleCatalog, nil)
			}
		}
		if cat.Config == nil {
			continue
		}
		for _, b := range cat.Config.Bundles {
			where := fmt.Sprintf("catalog %s, bundle %s", cat.Name, b.Name)
			c.add(b.Image, where, cat.Name, RoleBundle, patterns)
			for _, ri := range b.RelatedImages {
				c.add(ri.Image, where+", related image "+ri.Name, cat.Name, RoleRelated, patterns)
			}
		}
	}
	for i, img := range in.Mirror.AdditionalImages {
		c.add(img, fmt.Sprintf("additionalImages[%d]", i), "", RoleAdditional, patterns)
	}
	return c
}

// Unresolved lists the tag-only references of the image set, normalized and
// sorted: what the caller resolves to digests (once per run) and passes
// back as Input.Resolved. Blocked images are not listed, so a blocked tag
// is never looked up. The error reports inputs Build would reject too.
func Unresolved(in Input) ([]string, error) {
	c := collect(in)
	var out []string
	for key, w := range c.wants {
		if w.ref.digest == "" {
			out = append(out, key)
		}
	}
	sort.Strings(out)
	return out, errors.Join(c.errs...)
}

// Need says what needs one reference of the image set.
type Need struct {
	// Catalogs are the catalogs whose images include it, sorted.
	Catalogs []string
	// AdditionalImages are the indexes of the Mirror's additionalImages
	// entries naming it.
	AdditionalImages []int
}

// Needs tells, for each reference (normalized, as Unresolved spells it),
// what needs it: when a tag cannot be resolved, only what needs it fails,
// and the rest of the set is still built.
func Needs(in Input, refs []string) map[string]Need {
	c := collect(in)
	out := make(map[string]Need, len(refs))
	for _, key := range refs {
		var n Need
		if w := c.wants[key]; w != nil {
			for name := range w.catalogs {
				n.Catalogs = append(n.Catalogs, name)
			}
			slices.Sort(n.Catalogs)
		}
		if in.Mirror != nil {
			for i, raw := range in.Mirror.AdditionalImages {
				if r, err := parseRef(raw); err == nil && r.String() == key {
					n.AdditionalImages = append(n.AdditionalImages, i)
				}
			}
		}
		out[key] = n
	}
	return out
}

// Build computes the image set: every image pinned by digest, its
// destination, and every collision. It returns all problems at once, as
// *InvalidReferenceError, *MissingDigestError and *CollisionError joined,
// and no set when there is any: nothing may be copied before every
// destination is known to be unambiguous.
func Build(in Input) (*Set, error) {
	c := collect(in)
	if in.Mirror == nil {
		return nil, errors.Join(c.errs...)
	}
	m := in.Mirror
	mhost, mns, _ := strings.Cut(m.Registry, "/")
	mns = strings.Trim(mns, "/")
	set := &Set{Mirror: *m, Revision: in.Revision}
	var missing []string
	keys := make([]string, 0, len(c.wants))
	for k := range c.wants {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		w := c.wants[key]
		if b := c.blocked[key]; b != nil { // blocked before the catalog build claimed it
			for _, role := range b.Roles {
				w.roles[role] = true
			}
			for _, name := range b.Catalogs {
				w.catalogs[name] = true
			}
		}
		r := w.ref
		img := Image{Source: key, Repository: r.repo, Tag: r.tag, Digest: r.digest}
		if img.Digest == "" {
			d, ok := in.Resolved[key]
			if !ok {
				d, ok = in.Resolved[w.written]
			}
			if !ok {
				missing = append(missing, key)
				continue
			}
			if err := checkDigest(d); err != nil {
				c.errs = append(c.errs, fmt.Errorf("resolved digest of %s: %w", key, err))
				continue
			}
			img.Digest, img.Resolved = d, true
		}
		if inMirror(r, mhost, mns) {
			img.InPlace = true
			img.DestinationRepository = r.repo
		} else {
			img.DestinationRepository = m.Destination(r.host, r.path)
		}
		switch {
		case r.tag != "":
			img.Destination = img.DestinationRepository + ":" + r.tag
		case img.InPlace:
			img.Destination = img.DestinationRepository + "@" + img.Digest
		default:
			img.Destination = img.DestinationRepository + ":" + HashTag(key)
		}
		for role := range w.roles {
			img.Roles = append(img.Roles, role)
		}
		slices.Sort(img.Roles)
		for name := range w.catalogs {
			img.Catalogs = append(img.Catalogs, name)
		}
		slices.Sort(img.Catalogs)
		set.Images = append(set.Images, img)
	}
	if len(missing) > 0 {
		c.errs = append(c.errs, &MissingDigestError{Refs: missing})
	}
	untagMovedTags(set.Images)
	for _, err := range collisions(set.Images, m) {
		c.errs = append(c.errs, err)
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	for key, b := range c.blocked {
		if c.wants[key] == nil { // a built catalog image is never blocked
			set.Blocked = append(set.Blocked, *b)
		}
	}
	sort.Slice(set.Blocked, func(i, j int) bool { return set.Blocked[i].Source < set.Blocked[j].Source })
	for _, cat := range in.Catalogs {
		lc := LockedCatalog{Name: cat.Name, Source: cat.Source, SourceDigest: cat.SourceDigest}
		if cat.Target != "" {
			lc.Target, lc.Digest = cat.Target, cat.Digest
		}
		set.Catalogs = append(set.Catalogs, lc)
	}
	return set, nil
}

// inMirror reports whether r is already under the Mirror registry and
// namespace, where copying it would be copying it onto itself.
func inMirror(r ref, host, ns string) bool {
	if r.host != host {
		return false
	}
	return ns == "" || r.path == ns || strings.HasPrefix(r.path, ns+"/")
}

// untagMovedTags handles a tag that catalogs reference at several digests
// (repo:v1@sha256:a in one bundle, repo:v1@sha256:b in another: the tag
// moved upstream between releases). Pulls are by digest, so the tag is only
// a name in the mirror, but one tag cannot name two digests, and a digest
// left untagged may be garbage-collected by the registry. Each such
// tag@digest reference gets the hash tag of its full reference instead; a
// tag-only reference keeps its tag.
func untagMovedTags(images []Image) {
	digests := map[string]map[string]bool{}
	for i := range images {
		img := &images[i]
		if img.InPlace || img.Tag == "" {
			continue
		}
		if digests[img.Destination] == nil {
			digests[img.Destination] = map[string]bool{}
		}
		digests[img.Destination][img.Digest] = true
	}
	for i := range images {
		img := &images[i]
		if !img.InPlace && img.Tag != "" && !img.Resolved && len(digests[img.Destination]) > 1 {
			img.Destination = img.DestinationRepository + ":" + HashTag(img.Source)
		}
	}
}

// collisions finds destination repositories fed by more than one source
// repository, and destination tags that would receive different digests.
func collisions(images []Image, m *spec.MirrorSpec) []error {
	repos := map[string]map[string]bool{}
	type tagged struct {
		digests map[string]bool
		sources map[string]bool
	}
	tags := map[string]*tagged{}
	for i := range images {
		img := &images[i]
		if repos[img.DestinationRepository] == nil {
			repos[img.DestinationRepository] = map[string]bool{}
		}
		repos[img.DestinationRepository][img.Repository] = true
		if strings.Contains(img.Destination, "@") {
			continue
		}
		t := tags[img.Destination]
		if t == nil {
			t = &tagged{digests: map[string]bool{}, sources: map[string]bool{}}
			tags[img.Destination] = t
		}
		t.digests[img.Digest] = true
		t.sources[img.Source+describeDigest(img)] = true
	}
	var errs []error
	for _, dst := range sortedKeys(repos) {
		if srcs := repos[dst]; len(srcs) > 1 {
			sources := sortedKeys(srcs)
			errs = append(errs, &CollisionError{Destination: dst, Sources: sources, Hint: m.CollisionHint(sources[0], sources[1])})
		}
	}
	for _, dst := range sortedKeys(tags) {
		if t := tags[dst]; len(t.digests) > 1 && len(repos[repoOf(dst)]) == 1 {
			errs = append(errs, &CollisionError{Destination: dst, Tag: true, Sources: sortedKeys(t.sources)})
		}
	}
	return errs
}

func describeDigest(img *Image) string {
	if img.Resolved {
		return " (resolved to " + img.Digest + ")"
	}
	return ""
}

func repoOf(dst string) string {
	slash := strings.LastIndex(dst, "/")
	if i := strings.LastIndex(dst, ":"); i > slash {
		return dst[:i]
	}
	return dst
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CopyPairs lists what the copy engine copies: every image not already in
// the mirror, source by digest to destination tag, sorted by destination.
// Two references to one image in one repository (a tag and its digest) give
// two pairs with one digest; the engine copies the content once.
func (s *Set) CopyPairs() []Copy {
	seen := map[Copy]bool{}
	var out []Copy
	for i := range s.Images {
		img := &s.Images[i]
		if img.InPlace {
			continue
		}
		c := Copy{Source: img.Pinned(), Destination: img.Destination, Digest: img.Digest}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Destination != out[j].Destination {
			return out[i].Destination < out[j].Destination
		}
		return out[i].Source < out[j].Source
	})
	return out
}

// Image returns the image with the given normalized source, or nil.
func (s *Set) Image(source string) *Image {
	i := sort.Search(len(s.Images), func(i int) bool { return s.Images[i].Source >= source })
	if i < len(s.Images) && s.Images[i].Source == source {
		return &s.Images[i]
	}
	return nil
}
