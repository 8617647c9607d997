package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// entry is one value of the effective Mirror (or a Catalog) as written,
// with where it was written: checks that look across files name both
// places.
type entry struct {
	value  string
	origin *Origin
	kind   string
	name   string
	field  string
}

func (e entry) where() string {
	return fmt.Sprintf("%s:%d", e.origin.File, e.origin.LineOf(e.origin.fieldPath(e.field)))
}

func (v *validator) fail(e entry, format string, args ...any) {
	v.at(e.origin, e.kind, e.name, e.field, format, args...)
}

// blockedAdditions refuses an image that is both asked for and blocked:
// an additional image (from the Mirror or any ImageSetConfiguration) or a
// Catalog's extra bundle matched by any blockedImages pattern. Inside one
// Mirror the conflict is reported by the Mirror's own check; across files
// it used to pass validation and the image was silently left out.
func (v *validator) blockedAdditions(added, blocked []entry, cats []*Catalog) {
	type pattern struct {
		re *regexp.Regexp
		e  entry
	}
	var pats []pattern
	for _, b := range blocked {
		if re, err := regexp.Compile(b.value); err == nil {
			pats = append(pats, pattern{re, b})
		}
	}
	if len(pats) == 0 {
		return
	}
	for _, a := range added {
		for _, p := range pats {
			if a.kind == KindMirror && p.e.kind == KindMirror {
				continue // the Mirror's own check reported it
			}
			if p.re.MatchString(a.value) {
				v.fail(a, "%q is also blocked by blockedImages %q (%s); an image cannot be both added and blocked: remove one of them", a.value, p.e.value, p.e.where())
				break
			}
		}
	}
	for _, cat := range cats {
		for i, b := range cat.Spec.Bundles {
			if IsOCISource(b.Image) {
				continue // from a layout on disk, not a registry
			}
			for _, p := range pats {
				if p.re.MatchString(b.Image) {
					e := entry{value: b.Image, origin: cat.Origin, kind: KindCatalog, name: cat.Metadata.Name, field: fmt.Sprintf("spec.bundles[%d]", i)}
					v.fail(e, "%q is blocked by blockedImages %q (%s): the bundle would join the catalog but its image would never be mirrored; remove one of them", b.Image, p.e.value, p.e.where())
					break
				}
			}
		}
	}
}

// placed is an image of the spec at its destination.
type placed struct {
	source string // host/path
	target bool   // a Catalog's built image
	e      entry
}

type placedRef struct {
	ref    string
	target bool
}

// maxRepositoryName is the longest repository name (host and path)
// registries accept: distribution's NameTotalLengthMax.
const maxRepositoryName = 255

// destinations computes, for every image the spec names (built catalog
// targets, extra bundles, additional images), where the mirror will put
// it, with the naming rules the image set uses (MirrorSpec.Destination),
// and refuses what reconcile would refuse only after reading every
// registry: two source repositories landing in one destination repository,
// an image landing on the tag a built catalog is pushed to, a destination
// name too long for a registry.
func (v *validator) destinations(cfg *Config, added []entry) {
	m := cfg.Mirror
	if m == nil || !usableRegistry(m.Spec.Registry) {
		return
	}
	mhost, mns, _ := strings.Cut(m.Spec.Registry, "/")
	mns = strings.Trim(mns, "/")
	// The first image placed in each destination repository: a second
	// source there is reported and not placed, so one is all there is.
	repos := map[string]placed{}
	tags := map[string]placed{}
	seen := map[placedRef]bool{}
	place := func(ref string, target bool, e entry) {
		if seen[placedRef{ref, target}] {
			return // a duplicate, reported where the list is checked
		}
		seen[placedRef{ref, target}] = true
		r, err := reference.ParseNormalizedNamed(strings.TrimSpace(ref))
		if err != nil || hasUserinfo(ref) || !strings.Contains(ref, "/") {
			return // reported where the reference is checked
		}
		host, p := reference.Domain(r), reference.Path(r)
		source := host + "/" + p
		dst := m.Spec.Destination(host, p)
		inPlace := host == mhost && (mns == "" || p == mns || strings.HasPrefix(p, mns+"/"))
		if inPlace {
			dst = source // already in the mirror: copied nowhere
		} else if len(dst) > maxRepositoryName {
			v.fail(e, "%q would be mirrored to a repository name %d characters long; registries refuse names over %d: block it (blockedImages) or shorten the Mirror registry's namespace", ref, len(dst), maxRepositoryName)
			return
		}
		here := placed{source: source, target: target, e: e}
		if prev, ok := repos[dst]; !ok {
			repos[dst] = here
		} else if prev.source != source {
			hint := m.Spec.CollisionHint(source, prev.source)
			if prev.target {
				hint = fmt.Sprintf("%s/%s pushes its built catalog there (spec.target); mirror the other image elsewhere or give the Catalog another target", prev.e.kind, prev.e.name)
			}
			v.fail(e, "%q would be mirrored to %s, where %s (%s) goes too: %s", ref, dst, prev.source, prev.e.where(), hint)
			return
		}
		// A tag in the mirror that a built catalog is pushed to cannot be
		// another image's too. (Copied images keep no such claim: the
		// image set gives a tag that would name two digests to the
		// resolved image and a hash tag to the other.)
		if t, ok := r.(reference.Tagged); ok && inPlace {
			key := dst + ":" + t.Tag()
			if prev, ok := tags[key]; ok && prev.target != target {
				built, other := prev, here
				if target {
					built, other = here, prev
				}
				v.fail(e, "%q would be mirrored to %s, the tag %s/%s (%s) pushes its built catalog to: remove it, or give the Catalog another target", other.e.value, key, built.e.kind, built.e.name, built.e.where())
				return
			}
			if !ok || target {
				tags[key] = here
			}
		}
	}
	for _, cat := range cfg.Catalogs {
		if cat.Spec.Target != "" {
			place(cat.Spec.Target, true, entry{value: cat.Spec.Target, origin: cat.Origin, kind: KindCatalog, name: cat.Metadata.Name, field: "spec.target"})
		}
	}
	for _, cat := range cfg.Catalogs {
		for i, b := range cat.Spec.Bundles {
			place(b.Image, false, entry{value: b.Image, origin: cat.Origin, kind: KindCatalog, name: cat.Metadata.Name, field: fmt.Sprintf("spec.bundles[%d]", i)})
		}
	}
	for _, a := range added {
		place(a.value, false, a)
	}
}

// CollisionHint explains why source repositories a and b (host/path) land
// in one destination repository of this mirror, and what to do about it.
// Only the cause that applies is named: an image already in the mirror, a
// registry that destinations drop, or paths that maxPathComponents joins.
func (m *MirrorSpec) CollisionHint(a, b string) string {
	ha, pa, _ := strings.Cut(a, "/")
	hb, pb, _ := strings.Cut(b, "/")
	mhost, _, _ := strings.Cut(m.Registry, "/")
	switch {
	case ha == mhost || hb == mhost:
		return "one of them is already in the mirror at that path (a built catalog, or an image under the Mirror registry): block the other (blockedImages)"
	case pa == pb && ha != hb && !m.KeepSourceRegistry:
		return "they differ only in their registry, which destinations drop: set keepSourceRegistry, or block all but one (blockedImages)"
	case m.MaxPathComponents > 0:
		unflattened := *m
		unflattened.MaxPathComponents = 0
		if unflattened.Destination(ha, pa) != unflattened.Destination(hb, pb) {
			return fmt.Sprintf("maxPathComponents %d joins their paths with '-': raise it, or block all but one (blockedImages)", m.MaxPathComponents)
		}
	}
	return "block all but one (blockedImages)"
}

// localSource checks a local Catalog source directory as the catalog
// reader will see it: it exists, and nothing in it is a special file or a
// symbolic link the spec directory's view refuses (one leading outside the
// spec directory, with the CLI's view), so a catalog cannot read files from
// elsewhere on the machine or block on a FIFO.
func (v *validator) localSource(c objectCheck, source, dir string) {
	fi, err := fs.Stat(v.fsys, dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.fail("spec.source", "local catalog directory %q (%s in the spec tree) does not exist", source, dir)
		return
	case err != nil:
		c.fail("spec.source", "local catalog directory %q (%s in the spec tree) cannot be read: %s", source, dir, fileError(err))
		return
	case !fi.IsDir():
		c.fail("spec.source", "local catalog directory %q (%s in the spec tree) is not a directory", source, dir)
		return
	}
	_ = fs.WalkDir(v.fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			c.fail("spec.source", "local catalog directory %q: %s: %s", source, p, fileError(err))
			return nil
		}
		mode := d.Type()
		if mode&fs.ModeSymlink != 0 {
			fi, err := fs.Stat(v.fsys, p)
			if err != nil {
				c.fail("spec.source", "local catalog directory %q: %s: %s", source, p, fileError(err))
				return nil
			}
			mode = fi.Mode().Type()
		}
		if !mode.IsRegular() && !mode.IsDir() {
			c.fail("spec.source", "local catalog directory %q: %s is a %s, not a regular file", source, p, describeMode(mode))
		}
		return nil
	})
}
